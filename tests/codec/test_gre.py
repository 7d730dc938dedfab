# -*- test-case-name: tests.codec.test_gre -*-
"""
Tests for L{roaming.codec.gre}: vectors built by scapy, decoded by tshark,
fed truncated at every length, and hypothesis round trips.
"""

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE, Ether

from roaming.codec.gre import (
    GreHeader,
    ProtocolType,
    build_gre,
    gre_header_length,
    internet_checksum,
    parse_gre,
)
from roaming.errors import DecodeError
from tests.codec.support import prefixes, run_tshark, scapy_bytes, write_pcap

INNER_FRAME = scapy_bytes(
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    / IP(src="198.51.100.1", dst="198.51.100.2", tos=0x28)
    / b"payload of odd length"
)
KEY = 0x8000_0C0D
SEQUENCE = 0xFFFF_FFFE
COMBINATIONS = list(itertools.product((False, True), repeat=3))


def scapy_gre(checksum: bool, key: bool, sequence: bool, payload: bytes = INNER_FRAME) -> bytes:
    """
    Build a GRE packet with scapy, which computes the checksum itself.
    """
    header = GRE(
        proto=0x6558,
        chksum_present=int(checksum),
        key_present=int(key),
        seqnum_present=int(sequence),
    )
    if key:
        header.key = KEY
    if sequence:
        header.sequence_number = SEQUENCE
    return scapy_bytes(header / payload)


@pytest.mark.parametrize(("checksum", "key", "sequence"), COMBINATIONS)
def test_parse_scapy_vectors(checksum, key, sequence):
    """
    Every combination of C, K and S built by scapy parses to its fields and
    the payload.
    """
    header, payload = parse_gre(scapy_gre(checksum, key, sequence))

    assert header.protocol_type == ProtocolType.TRANSPARENT_ETHERNET_BRIDGING
    assert header.checksum_present is checksum
    assert header.key == (KEY if key else None)
    assert header.sequence == (SEQUENCE if sequence else None)
    assert payload == INNER_FRAME
    assert header.length == gre_header_length(checksum=checksum, key=key, sequence=sequence)


@pytest.mark.parametrize(("checksum", "key", "sequence"), COMBINATIONS)
def test_build_matches_scapy(checksum, key, sequence):
    """
    L{build_gre} produces the same bytes as scapy, checksum included.
    """
    built = build_gre(
        0x6558,
        INNER_FRAME,
        key=KEY if key else None,
        sequence=SEQUENCE if sequence else None,
        checksum=checksum,
    )

    assert built == scapy_gre(checksum, key, sequence)


@pytest.mark.parametrize(("checksum", "key", "sequence"), COMBINATIONS)
def test_truncated_at_every_length(checksum, key, sequence):
    """
    A prefix shorter than the header raises L{DecodeError}; a longer one
    parses with a shorter payload, unless a checksum no longer matches.
    """
    packet = scapy_gre(checksum, key, sequence)
    length = gre_header_length(checksum=checksum, key=key, sequence=sequence)
    for prefix in prefixes(packet):
        if len(prefix) < length:
            with pytest.raises(DecodeError):
                parse_gre(prefix)
            continue
        try:
            header, payload = parse_gre(prefix)
        except DecodeError as error:
            assert checksum, f"prefix of {len(prefix)} bytes raised {error}"
            assert "checksum" in str(error)
        else:
            assert payload == packet[length : len(prefix)]
            assert header.key == (KEY if key else None)


def test_version_one_rejected():
    """
    Version 1 (the enhanced GRE of PPTP) raises L{DecodeError}.
    """
    packet = scapy_bytes(GRE(version=1, proto=0x880B) / b"ppp")

    with pytest.raises(DecodeError, match="version 1"):
        parse_gre(packet)


@pytest.mark.parametrize("bit", [0x4000, 0x0800, 0x0400])
def test_rfc1701_bits_rejected(bit):
    """
    Routing present, strict source route and recursion control raise
    L{DecodeError} (RFC 2784 section 2.3).
    """
    packet = struct.pack("!HH", bit, 0x6558) + INNER_FRAME

    with pytest.raises(DecodeError, match="reserved bits"):
        parse_gre(packet)


@pytest.mark.parametrize("bit", [1 << shift for shift in range(3, 10)])
def test_reserved_bits_ignored(bit):
    """
    Bits 6 to 12 are ignored on receipt (RFC 2784 section 2.3).
    """
    packet = struct.pack("!HH", bit, 0x6558) + INNER_FRAME

    header, payload = parse_gre(packet)

    assert header == GreHeader(0x6558)
    assert payload == INNER_FRAME


def test_bad_checksum_rejected():
    """
    Any changed byte under the checksum raises L{DecodeError}.
    """
    packet = bytearray(scapy_gre(True, True, True))
    for index in (4, 9, 13, len(packet) - 1):
        damaged = bytearray(packet)
        damaged[index] ^= 0x01
        with pytest.raises(DecodeError, match="bad checksum"):
            parse_gre(bytes(damaged))


def test_reserved1_not_checked():
    """
    A non-zero Reserved1 (scapy calls it "offset", its RFC 1701 name) is
    ignored when the checksum covers it
    (RFC 2784 section 2.6).
    """
    packet = scapy_bytes(GRE(proto=0x6558, chksum_present=1, offset=0x1234) / INNER_FRAME)

    header, payload = parse_gre(packet)

    assert header.checksum_present
    assert payload == INNER_FRAME


def test_other_protocol_passed_through():
    """
    Payloads other than Ethernet come back with their protocol type.
    """
    inner = scapy_bytes(IP(src="192.0.2.1", dst="192.0.2.2"))
    packet = scapy_bytes(GRE(proto=0x0800) / inner)

    header, payload = parse_gre(packet)

    assert header.protocol_type == ProtocolType.IPV4
    assert payload == inner


@pytest.mark.parametrize(
    ("value", "field"),
    [(-1, "protocol_type"), (0x10000, "protocol_type"), (1 << 32, "key"), (-1, "sequence")],
)
def test_build_rejects_out_of_range(value, field):
    """
    Values that do not fit their field raise L{ValueError}.
    """
    arguments = {"protocol_type": 0x6558, "payload": b""}
    arguments[field] = value

    with pytest.raises(ValueError, match="does not fit"):
        build_gre(**arguments)


def test_internet_checksum_rfc1071_example():
    """
    The worked example of RFC 1071 section 3: the sum of these words is
    0xDDF2, so the checksum is 0x220D.
    """
    data = bytes.fromhex("0001f203f4f5f6f7")

    assert internet_checksum(data) == 0x220D
    assert internet_checksum(data + b"\x22\x0d") == 0


@given(st.binary(max_size=300))
def test_internet_checksum_matches_scapy(data):
    """
    The modular shortcut agrees with scapy's word-by-word checksum,
    including odd lengths and all-ones data.
    """
    from scapy.utils import checksum

    assert internet_checksum(data) == checksum(data)


@given(
    protocol_type=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=200),
    key=st.none() | st.integers(0, 0xFFFF_FFFF),
    sequence=st.none() | st.integers(0, 0xFFFF_FFFF),
    checksum=st.booleans(),
)
def test_round_trip(protocol_type, payload, key, sequence, checksum):
    """
    Parsing what L{build_gre} built returns the same fields and payload.
    """
    packet = build_gre(protocol_type, payload, key=key, sequence=sequence, checksum=checksum)

    header, parsed_payload = parse_gre(packet)

    assert header == GreHeader(protocol_type, key, sequence, checksum)
    assert parsed_payload == payload


@given(st.binary(max_size=64))
def test_arbitrary_bytes(data):
    """
    Arbitrary input either parses or raises L{DecodeError}, nothing else.
    """
    try:
        header, payload = parse_gre(data)
    except DecodeError as error:
        assert error.protocol == "gre"
    else:
        assert len(data) == header.length + len(payload)


def test_tshark_decodes_built_packets(tmp_path):
    """
    tshark reads the key, sequence number and a good checksum from packets
    that L{build_gre} built, for every combination of options.
    """
    frames = []
    for checksum, key, sequence in COMBINATIONS:
        gre = build_gre(
            0x6558,
            INNER_FRAME,
            key=KEY if key else None,
            sequence=SEQUENCE if sequence else None,
            checksum=checksum,
        )
        outer = IP(src="192.0.2.1", dst="192.0.2.2", proto=47) / gre
        ethernet = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
        frames.append(scapy_bytes(ethernet / outer))
    pcap = tmp_path / "gre.pcap"
    write_pcap(pcap, frames)

    rows = run_tshark(
        pcap,
        "gre.proto",
        "gre.key",
        "gre.sequence_number",
        "gre.checksum.status",
        "eth.src",
    )

    assert len(rows) == len(COMBINATIONS)
    for (checksum, key, sequence), row in zip(COMBINATIONS, rows, strict=True):
        proto, key_field, sequence_field, status, inner_source = row
        assert int(proto, 0) == 0x6558
        if key:
            assert int(key_field, 0) == KEY
        else:
            assert key_field == ""
        if sequence:
            assert int(sequence_field, 0) == SEQUENCE
        else:
            assert sequence_field == ""
        # tshark's checksum status: 1 is "Good".
        assert status == ("1" if checksum else "")
        assert "02:00:00:00:00:01" in inner_source
