"""
Tests for the IEEE 802.11F ADD-notify codec.

scapy and tshark have no 802.11F dissector (tshark's "iapp" is the older
pre-standard protocol), so the vectors are written out field by field from
the packet layout. The header is version (1 octet), command (1), identifier
(2) and length (2). The ADD-notify body is address length (1), reserved (1),
MAC address (6) and sequence number (2). Every field is in network byte
order.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roaming.control.iapp80211f import (
    ADD_NOTIFY_LENGTH,
    IAPP_MULTICAST_GROUP,
    IAPP_PORT,
    AddNotify,
    IappCommand,
    build_add_notify,
    parse_add_notify,
    parse_header,
)
from roaming.errors import DecodeError

STATION = bytes.fromhex("00a0c9123456")

# Version 0, command 0 (ADD-notify), identifier 0x1234, length 16; address
# length 6, reserved 0, MAC 00:a0:c9:12:34:56, sequence number 0x0abc.
VECTOR = bytes.fromhex("00 00 1234 001006 00 00a0c9123456 0abc")


def vector(**fields) -> bytes:
    values = dict(
        version=0,
        command=0,
        identifier=0x1234,
        length=16,
        address_length=6,
        reserved=0,
        mac=STATION,
        sequence=0x0ABC,
    )
    values.update(fields)
    return struct.pack(
        ">BBHH", values["version"], values["command"], values["identifier"], values["length"]
    ) + struct.pack(
        ">BB6sH", values["address_length"], values["reserved"], values["mac"], values["sequence"]
    )


def test_constants() -> None:
    """
    The port and group are the IANA assignments for IAPP.
    """
    assert IAPP_PORT == 3517
    assert str(IAPP_MULTICAST_GROUP) == "224.0.1.178"
    assert ADD_NOTIFY_LENGTH == 16


def test_vector_matches_field_layout() -> None:
    """
    The literal vector and the field-by-field vector agree.
    """
    assert vector() == VECTOR


def test_parse_vector() -> None:
    """
    Every field of the vector comes out of the parser.
    """
    parsed = parse_add_notify(VECTOR)
    assert parsed == AddNotify(STATION, 0x0ABC, 0x1234)


def test_parse_header() -> None:
    """
    The header parser returns the fields and the body.
    """
    header, body = parse_header(VECTOR)
    assert header.version == 0
    assert header.command is IappCommand.ADD_NOTIFY
    assert header.identifier == 0x1234
    assert header.length == 16
    assert body == VECTOR[6:]


def test_build_matches_vector() -> None:
    """
    The builder writes exactly the vector's octets.
    """
    assert build_add_notify(STATION, sequence=0x0ABC, identifier=0x1234) == VECTOR


def test_trailing_octets_ignored() -> None:
    """
    Octets after the length field's end are ignored.
    """
    assert parse_add_notify(VECTOR + b"\x00\x00") == parse_add_notify(VECTOR)


@pytest.mark.parametrize("length", range(len(VECTOR)))
def test_truncated_vector(length: int) -> None:
    """
    The vector cut at every length raises DecodeError.
    """
    with pytest.raises(DecodeError) as raised:
        parse_add_notify(VECTOR[:length])
    assert raised.value.protocol == "iapp"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"version": 1}, "version"),
        ({"command": 1}, "not ADD-notify"),
        ({"length": 5}, "shorter than the header"),
        ({"length": 17}, "exceeds"),
        ({"address_length": 8}, "address length"),
        ({"mac": bytes.fromhex("01005e000001")}, "unicast"),
        ({"mac": bytes(6)}, "unicast"),
    ],
)
def test_malformed(fields: dict, reason: str) -> None:
    """
    Each inconsistent field raises DecodeError that names the problem.
    """
    with pytest.raises(DecodeError, match=reason):
        parse_add_notify(vector(**fields))


def test_body_length_mismatch() -> None:
    """
    A length field that covers more than the ADD-notify body is rejected
    even when the octets are present.
    """
    with pytest.raises(DecodeError, match="body"):
        parse_add_notify(vector(length=18) + b"\x00\x00")


def test_unknown_command_header() -> None:
    """
    The header parser keeps an unknown command code as a plain int.
    """
    header, _ = parse_header(vector(command=200))
    assert header.command == 200
    assert not isinstance(header.command, IappCommand)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"mac": b"\x00" * 5}, "6 octets"),
        ({"mac": STATION, "sequence": 0x10000}, "sequence"),
        ({"mac": STATION, "identifier": -1}, "identifier"),
    ],
)
def test_build_rejects(arguments: dict, reason: str) -> None:
    """
    The builder rejects values that do not fit their fields.
    """
    with pytest.raises(ValueError, match=reason):
        build_add_notify(**arguments)


@given(st.binary(max_size=40))
def test_random_input_only_decode_error(data: bytes) -> None:
    """
    Arbitrary input either parses or raises DecodeError, nothing else.
    """
    try:
        parsed = parse_add_notify(data)
    except DecodeError:
        return
    assert len(parsed.mac) == 6


@given(
    st.binary(min_size=6, max_size=6).filter(lambda mac: not mac[0] & 1 and any(mac)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)
def test_build_parse_round_trip(mac: bytes, sequence: int, identifier: int) -> None:
    """
    Parsing a built packet returns the values it was built from.
    """
    parsed = parse_add_notify(build_add_notify(mac, sequence, identifier))
    assert parsed == AddNotify(mac, sequence, identifier)
