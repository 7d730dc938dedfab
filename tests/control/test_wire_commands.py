# -*- test-case-name: tests.control.test_wire_commands -*-
"""
Tests for L{roaming.control.commands}: every message class has a command
whose arguments are its fields, every message survives the AMP encoding,
and the encoded boxes match the AMP wire format as an independent parser
written from the AMP specification reads them.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

import attrs
import pytest
from twisted.protocols import amp

from roaming.control import commands, messages
from roaming.control.clientdb import DatabaseFullError
from roaming.control.commands import (
    COMMANDS,
    IPv4AddressArgument,
    IPv4NetworkArgument,
    MacAddress,
    from_arguments,
    to_arguments,
    wire_error,
)
from roaming.control.messages import InvalidMessageError

MAC = bytes.fromhex("02005e0000a1")
SC = IPv4Address("10.0.0.1")
AP = IPv4Address("10.1.0.10")
SUBNET = IPv4Network("10.1.0.0/24")

#: One instance of every message, with every optional field set.
EXAMPLES = [
    messages.ScRegister(SC, [SUBNET, IPv4Network("10.9.0.0/16")], round=7),
    messages.ScAnnounce(SC, [SUBNET], round=3),
    messages.ScWithdraw(SC, round=4),
    messages.DiscoveryRound(9),
    messages.ApRegister(AP, [SUBNET], vlans=[1, 4094]),
    messages.Keepalive(0xFFFFFFFF),
    messages.IappAdd(
        MAC,
        IPv4Address("10.1.0.50"),
        24,
        vap_id=3,
        vlan_id=12,
        pmk_cache=bytes(range(48)),
        ap=AP,
    ),
    messages.IappMove(MAC, AP),
    messages.ApAddTraveler(MAC, IPv4Address("10.2.0.7"), 24, vap_id=1, vlan_id=5),
    messages.ApDeleteTraveler(MAC, IPv4Address("10.1.0.50")),
    messages.MscAddTraveler(MAC, IPv4Address("10.2.0.7"), SC, 24, vap_id=1, vlan_id=5),
    messages.MscDeleteTraveler(MAC),
    messages.MscDeleteVisitor(MAC),
    messages.AddTraveler(MAC, vap_id=2, vlan_id=100),
    messages.DeleteTraveler(MAC),
    messages.DeleteVisitor(MAC),
]


def parse_amp_box(data: bytes) -> dict[bytes, bytes]:
    """
    Parse one AMP box as the AMP specification describes it: pairs of a
    16-bit big-endian length and a key, then a 16-bit length and a value,
    ended by an empty key.
    """
    box: dict[bytes, bytes] = {}
    offset = 0
    while True:
        (key_length,) = struct.unpack_from("!H", data, offset)
        offset += 2
        if key_length == 0:
            break
        key = data[offset : offset + key_length]
        offset += key_length
        (value_length,) = struct.unpack_from("!H", data, offset)
        offset += 2
        box[key] = data[offset : offset + value_length]
        offset += value_length
    assert offset == len(data)
    return box


def parse_list_of(value: bytes) -> list[bytes]:
    """
    Parse an AMP ListOf value: elements each prefixed by a 16-bit length.
    """
    elements = []
    offset = 0
    while offset < len(value):
        (length,) = struct.unpack_from("!H", value, offset)
        elements.append(value[offset + 2 : offset + 2 + length])
        offset += 2 + length
    return elements


def encode(message: messages.Message) -> bytes:
    command = COMMANDS[type(message)]
    box = command.makeArguments(to_arguments(message), None)
    return amp.AmpBox(box).serialize()


def decode(command: type[commands.MessageCommand], data: bytes) -> messages.Message:
    box = amp.AmpBox(parse_amp_box(data))
    return from_arguments(command, command.parseArguments(box, None))


def test_every_message_has_a_command() -> None:
    """
    The command table covers every message class.
    """
    assert set(COMMANDS) == set(messages.MESSAGE_TYPES)


@pytest.mark.parametrize("message_type", messages.MESSAGE_TYPES, ids=lambda t: t.__name__)
def test_command_arguments_are_fields(message_type: type) -> None:
    """
    Each command is named after its message and has one argument per field.
    """
    command = COMMANDS[message_type]
    names = [name.decode("ascii") for name, _ in command.arguments]
    assert command.commandName == message_type.__name__.encode("ascii")
    assert names == [field.name for field in attrs.fields(message_type)]
    assert command.errors[commands.RemoteInvalidMessageError] == b"INVALID"
    assert command.fatalErrors[commands.IdentityMismatchError] == b"IDENTITY"


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_message_round_trip(message: messages.Message) -> None:
    """
    Every message decodes to an equal message after AMP encoding.
    """
    command = COMMANDS[type(message)]
    assert decode(command, encode(message)) == message


def test_examples_cover_every_message() -> None:
    assert {type(message) for message in EXAMPLES} == set(messages.MESSAGE_TYPES)


def test_iapp_add_wire_values() -> None:
    """
    On the wire a MAC address is its 6 bytes, addresses are dotted quads,
    integers are decimal text and PMK data is raw bytes.
    """
    message = EXAMPLES[6]
    box = parse_amp_box(encode(message))
    assert box[b"mac"] == MAC
    assert box[b"ip"] == b"10.1.0.50"
    assert box[b"prefix"] == b"24"
    assert box[b"vap_id"] == b"3"
    assert box[b"vlan_id"] == b"12"
    assert box[b"pmk_cache"] == bytes(range(48))
    assert box[b"ap"] == b"10.1.0.10"


def test_subnet_list_wire_values() -> None:
    """
    Subnets travel as an AMP ListOf of CIDR strings.
    """
    box = parse_amp_box(encode(EXAMPLES[0]))
    assert parse_list_of(box[b"subnets"]) == [b"10.1.0.0/24", b"10.9.0.0/16"]
    assert box[b"sc"] == b"10.0.0.1"
    assert box[b"round"] == b"7"


def test_unknown_optional_fields_omitted() -> None:
    """
    An unknown IP address is left out of the box and decodes as C{None}.
    """
    message = messages.IappAdd(MAC)
    box = parse_amp_box(encode(message))
    assert b"ip" not in box
    assert b"prefix" not in box
    assert b"ap" not in box
    assert decode(commands.IappAddCommand, encode(message)) == message


def test_defaulted_fields_may_be_omitted() -> None:
    """
    A box without the fields that have defaults decodes with the defaults.
    """
    data = amp.AmpBox({b"mac": MAC}).serialize()
    assert decode(commands.AddTravelerCommand, data) == messages.AddTraveler(MAC, 0, 0)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        (MacAddress(), b"\x02\x00\x00"),
        (MacAddress(), b"\x02" * 7),
        (IPv4AddressArgument(), b"10.0.0.256"),
        (IPv4AddressArgument(), b"\xff\xfe"),
        (IPv4AddressArgument(), b"::1"),
        (IPv4NetworkArgument(), b"10.0.0.1/24"),
        (IPv4NetworkArgument(), b"10.0.0.0/33"),
    ],
)
def test_argument_rejects_bad_encoding(argument: amp.Argument, value: bytes) -> None:
    """
    Each custom argument type raises InvalidMessageError for bad bytes.
    """
    with pytest.raises(InvalidMessageError):
        argument.fromString(value)


def test_from_arguments_validates_fields() -> None:
    """
    A group MAC address decodes but fails the message's validation.
    """
    data = amp.AmpBox({b"mac": bytes.fromhex("01005e000001")}).serialize()
    with pytest.raises(InvalidMessageError, match="group address"):
        decode(commands.DeleteVisitorCommand, data)


def test_from_arguments_rejects_out_of_range() -> None:
    """
    A VLAN ID above 4094 fails validation.
    """
    data = amp.AmpBox({b"mac": MAC, b"vlan_id": b"4095"}).serialize()
    with pytest.raises(InvalidMessageError, match="vlan_id"):
        decode(commands.AddTravelerCommand, data)


def test_arguments_for_unknown_type() -> None:
    """
    A message field without a wire encoding is reported at definition time.
    """

    @attrs.frozen
    class Odd(messages.Message):
        ratio: float

    with pytest.raises(TypeError, match=r"Odd.ratio has type 'float'"):
        commands.arguments_for(Odd)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidMessageError("mac", "bad"), commands.RemoteInvalidMessageError),
        (messages.NoHomeAccessPointError(MAC, None), commands.RemoteNoHomeAccessPointError),
        (messages.UnexpectedMessageError("no"), commands.RemoteUnexpectedMessageError),
        (DatabaseFullError("full"), commands.RemoteTableFullError),
        (commands.NotAllowedError("no"), commands.NotAllowedError),
    ],
)
def test_wire_error_mapping(error: Exception, expected: type) -> None:
    """
    The core's exceptions become the declared wire errors with their text.
    """
    remote = wire_error(error)
    assert type(remote) is expected
    assert str(remote) == str(error)


def test_wire_error_unknown() -> None:
    """
    An exception the core does not raise on purpose has no wire error.
    """
    assert wire_error(KeyError("x")) is None


def test_remote_error_from_bytes() -> None:
    """
    AMP rebuilds errors from the description bytes; they decode to text.
    """
    error = commands.RemoteNoHomeAccessPointError(b"no home AP for 02:00")
    assert error.description == "no home AP for 02:00"


def test_address_argument_round_trip() -> None:
    """
    The address argument formats and parses dotted quads, also from its
    cache, and rejects forms that ipaddress rejects.
    """
    argument = commands.IPv4AddressArgument()
    for text in (b"10.1.0.10", b"10.1.0.10", b"192.0.2.255"):
        assert argument.toString(argument.fromString(text)) == text
    assert argument.toString("198.51.100.7") == b"198.51.100.7"
    for bad in (b"10.1.0", b"010.1.0.1", b"10.1.0.256", b"\xff"):
        with pytest.raises(InvalidMessageError, match="is not an IPv4 address"):
            argument.fromString(bad)


def test_command_missing_argument_fails() -> None:
    """
    callRemote with a required argument missing fails its Deferred with
    InvalidSignature, as AMP's own commands do.
    """
    command = commands.COMMANDS[messages.ApDeleteTraveler]
    with pytest.raises(amp.InvalidSignature, match="mac"):
        command()
