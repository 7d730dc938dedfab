# -*- test-case-name: tests.codec.test_icmp -*-
"""
ICMP for IPv4 (RFC 792), with the next-hop MTU of RFC 1191.

L{parse_icmp} returns L{IcmpEcho} for echo request and reply with code 0,
L{IcmpDestinationUnreachable}, L{IcmpTimeExceeded}, and L{IcmpMessage} for
every other type and code, which keeps the 4 bytes after the checksum raw.
"""

__all__ = [
    "HEADER_LENGTH",
    "IcmpDestinationUnreachable",
    "IcmpEcho",
    "IcmpMessage",
    "IcmpTimeExceeded",
    "IcmpType",
    "TimeExceededCode",
    "UnreachableCode",
    "build_icmp",
    "parse_icmp",
]

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from roaming.codec._checksum import internet_checksum
from roaming.errors import DecodeError

PROTOCOL = "icmp"

_HEADER = struct.Struct("!BBHHH")
HEADER_LENGTH = _HEADER.size
"""Type, code, checksum and the 4 type-specific bytes: 8 bytes."""


class IcmpType(IntEnum):
    """ICMP message types (RFC 792)."""

    ECHO_REPLY = 0
    DESTINATION_UNREACHABLE = 3
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12


class UnreachableCode(IntEnum):
    """Destination unreachable codes (RFC 792, RFC 1122 section 3.2.2.1)."""

    NETWORK = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAGMENTATION_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5


class TimeExceededCode(IntEnum):
    """Time exceeded codes (RFC 792)."""

    TTL_EXCEEDED = 0
    REASSEMBLY_TIME_EXCEEDED = 1


@dataclass(frozen=True, slots=True)
class IcmpEcho:
    """An echo request or reply (RFC 792, "Echo or Echo Reply Message")."""

    type: int
    """L{IcmpType.ECHO_REQUEST} or L{IcmpType.ECHO_REPLY}."""
    identifier: int
    sequence: int
    data: bytes = b""
    checksum: int | None = field(default=None, compare=False)
    """Checksum as received; L{build_icmp} computes it when C{None}."""


@dataclass(frozen=True, slots=True)
class IcmpDestinationUnreachable:
    """A destination unreachable message."""

    code: int
    """L{UnreachableCode} value."""
    original: bytes
    """The start of the datagram that failed: its IP header and more."""
    next_hop_mtu: int = 0
    """
    MTU of the next hop when C{code} is L{UnreachableCode.FRAGMENTATION_NEEDED}
    (RFC 1191 section 4); 0 for other codes and for routers that predate
    RFC 1191.
    """
    checksum: int | None = field(default=None, compare=False)

    type = IcmpType.DESTINATION_UNREACHABLE


@dataclass(frozen=True, slots=True)
class IcmpTimeExceeded:
    """A time exceeded message."""

    code: int
    """L{TimeExceededCode} value."""
    original: bytes
    """The start of the datagram that was dropped: its IP header and more."""
    checksum: int | None = field(default=None, compare=False)

    type = IcmpType.TIME_EXCEEDED


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """Any other ICMP message, with its type-specific bytes left raw."""

    type: int
    code: int
    rest_of_header: bytes
    """The 4 bytes after the checksum."""
    body: bytes = b""
    checksum: int | None = field(default=None, compare=False)


IcmpPacket = IcmpEcho | IcmpDestinationUnreachable | IcmpTimeExceeded | IcmpMessage


def parse_icmp(message: bytes, *, verify_checksum: bool = True) -> IcmpPacket:
    """
    Parse an ICMP message, the whole payload of an IPv4 packet with
    protocol 1.

    The 4 unused bytes of destination unreachable (2 with code 4) and time
    exceeded messages are not kept, so RFC 4884 extension lengths are lost.

    @param verify_checksum: raise when the checksum over the message is
        wrong.
    @raise DecodeError: the message is shorter than 8 bytes or the checksum
        is wrong.
    """
    size = len(message)
    if size < HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"message of {size} bytes is shorter than the 8-byte header")
    icmp_type, code, checksum, high, low = _HEADER.unpack_from(message)
    if verify_checksum and internet_checksum(message) != 0:
        raise DecodeError(PROTOCOL, f"checksum 0x{checksum:04x} is wrong")

    body = message[HEADER_LENGTH:]
    if icmp_type in (IcmpType.ECHO_REQUEST, IcmpType.ECHO_REPLY) and code == 0:
        return IcmpEcho(icmp_type, high, low, body, checksum)
    if icmp_type == IcmpType.DESTINATION_UNREACHABLE:
        mtu = low if code == UnreachableCode.FRAGMENTATION_NEEDED else 0
        return IcmpDestinationUnreachable(code, body, mtu, checksum)
    if icmp_type == IcmpType.TIME_EXCEEDED:
        return IcmpTimeExceeded(code, body, checksum)
    return IcmpMessage(icmp_type, code, message[4:HEADER_LENGTH], body, checksum)


def build_icmp(packet: IcmpPacket) -> bytes:
    """
    Serialise C{packet}, computing the checksum unless C{packet.checksum}
    is set.

    @raise ValueError: a field is out of range, C{rest_of_header} is not 4
        bytes, or a next-hop MTU is given with a code other than 4.
    """
    if isinstance(packet, IcmpEcho):
        if packet.type not in (IcmpType.ECHO_REQUEST, IcmpType.ECHO_REPLY):
            raise ValueError(f"invalid echo type {packet.type}: expected 0 or 8")
        header = (packet.type, 0, packet.identifier, packet.sequence)
        body = packet.data
    elif isinstance(packet, IcmpDestinationUnreachable):
        if packet.next_hop_mtu and packet.code != UnreachableCode.FRAGMENTATION_NEEDED:
            raise ValueError(
                f"next-hop MTU {packet.next_hop_mtu} is only valid with code 4, not {packet.code}"
            )
        header = (packet.type, packet.code, 0, packet.next_hop_mtu)
        body = packet.original
    elif isinstance(packet, IcmpTimeExceeded):
        header = (packet.type, packet.code, 0, 0)
        body = packet.original
    else:
        if len(packet.rest_of_header) != 4:
            raise ValueError(
                f"rest of header of {len(packet.rest_of_header)} bytes must be exactly 4 bytes"
            )
        high, low = struct.unpack("!HH", packet.rest_of_header)
        header = (packet.type, packet.code, high, low)
        body = packet.body

    icmp_type, code, high, low = header
    checksum = 0 if packet.checksum is None else packet.checksum
    try:
        data = _HEADER.pack(icmp_type, code, checksum, high, low) + body
    except struct.error as error:
        raise ValueError(f"invalid ICMP field in {packet!r}: {error}") from None
    if packet.checksum is None:
        checksum = internet_checksum(data)
        data = data[:2] + checksum.to_bytes(2, "big") + data[4:]
    return data
