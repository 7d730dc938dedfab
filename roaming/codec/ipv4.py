# -*- test-case-name: tests.codec.test_ipv4 -*-
"""
IPv4 packets (RFC 791).

The header length (IHL) is honoured, options are kept as bytes and checked
for well-formed option lengths, and the total length bounds the payload, so
Ethernet padding after a short packet never becomes payload.  Addresses are
C{int}.
"""

__all__ = [
    "MAX_OPTIONS_LENGTH",
    "MIN_HEADER_LENGTH",
    "IpProtocol",
    "Ipv4Flags",
    "Ipv4Option",
    "Ipv4Packet",
    "build_ipv4",
    "parse_ipv4",
    "parse_ipv4_options",
]

import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from roaming.codec._checksum import internet_checksum
from roaming.errors import DecodeError

PROTOCOL = "ipv4"

_HEADER = struct.Struct("!BBHHHBBHII")
MIN_HEADER_LENGTH = _HEADER.size
"""Length of a header without options, 20 bytes."""

MAX_OPTIONS_LENGTH = 40
"""The 4-bit IHL counts 32-bit words, so a header has at most 60 bytes."""

_MAX_TOTAL_LENGTH = 0xFFFF
_OPTION_END = 0
_OPTION_NOP = 1


class IpProtocol(IntEnum):
    """IP protocol numbers that roaming decodes (IANA "Protocol Numbers")."""

    HOPOPT = 0
    ICMP = 1
    IGMP = 2
    TCP = 6
    UDP = 17
    IPV6_ROUTE = 43
    IPV6_FRAG = 44
    GRE = 47
    ESP = 50
    AH = 51
    IPV6_ICMP = 58
    IPV6_NONXT = 59
    IPV6_OPTS = 60


class Ipv4Flags(IntFlag):
    """The three flag bits of the IPv4 header (RFC 791 section 3.1)."""

    RESERVED = 4
    DONT_FRAGMENT = 2
    MORE_FRAGMENTS = 1


@dataclass(frozen=True, slots=True)
class Ipv4Option:
    """One IPv4 option (RFC 791 section 3.1, "Options")."""

    type: int
    data: bytes = b""
    """Option data after the type and length bytes; empty for END and NOP."""


@dataclass(frozen=True, slots=True)
class Ipv4Packet:
    """An IPv4 packet: the header fields and the payload."""

    source: int
    destination: int
    protocol: int
    """L{IpProtocol} value of the payload."""
    payload: bytes
    """The bytes after the header, up to the total length."""
    ttl: int = 64
    dscp: int = 0
    """Differentiated services code point, 0 to 63 (RFC 2474)."""
    ecn: int = 0
    """Explicit congestion notification bits, 0 to 3 (RFC 3168)."""
    identification: int = 0
    flags: int = 0
    """L{Ipv4Flags} bits."""
    fragment_offset: int = 0
    """Offset of this fragment in units of 8 bytes."""
    options: bytes = b""
    """Raw options, a multiple of 4 bytes and at most 40."""
    checksum: int | None = field(default=None, compare=False)
    """
    Header checksum as received.  L{build_ipv4} computes it when it is
    C{None} and writes it unchanged otherwise, so tests can build bad ones.
    """

    @property
    def header_length(self) -> int:
        """Header length in bytes, options included."""
        return MIN_HEADER_LENGTH + len(self.options)

    @property
    def is_fragment(self) -> bool:
        """
        Whether the packet is part of a fragmented datagram: more fragments
        follow or its offset is not zero (RFC 791 section 3.2).
        """
        return bool(self.flags & Ipv4Flags.MORE_FRAGMENTS) or self.fragment_offset != 0


def parse_ipv4(
    packet: bytes, *, verify_checksum: bool = True, allow_truncated: bool = False
) -> Ipv4Packet:
    """
    Parse an IPv4 packet.  Bytes after the total length are ignored.

    @param verify_checksum: raise when the header checksum is wrong.
    @param allow_truncated: accept a payload shorter than the total length
        and return the bytes present, as for the start of a datagram quoted
        in an ICMP error message (RFC 792).
    @raise DecodeError: the version is not 4, the IHL is below 5, the header
        or the total length is longer than the data, the total length is
        shorter than the header, an option is malformed, or the checksum is
        wrong.
    """
    size = len(packet)
    if size < MIN_HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"packet of {size} bytes is shorter than the 20-byte header")
    (
        version_ihl,
        tos,
        total_length,
        identification,
        flags_offset,
        ttl,
        protocol,
        checksum,
        source,
        destination,
    ) = _HEADER.unpack_from(packet)

    version = version_ihl >> 4
    if version != 4:
        raise DecodeError(PROTOCOL, f"version {version} is not 4")
    header_length = (version_ihl & 0x0F) * 4
    if header_length < MIN_HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"IHL {header_length // 4} is below the minimum of 5")
    if header_length > size:
        raise DecodeError(
            PROTOCOL, f"header of {header_length} bytes exceeds the {size} bytes present"
        )
    if total_length < header_length:
        raise DecodeError(
            PROTOCOL, f"total length {total_length} is shorter than the {header_length}-byte header"
        )
    if total_length > size and not allow_truncated:
        raise DecodeError(PROTOCOL, f"total length {total_length} exceeds the {size} bytes present")
    if verify_checksum and internet_checksum(packet[:header_length]) != 0:
        raise DecodeError(PROTOCOL, f"header checksum 0x{checksum:04x} is wrong")

    options = packet[MIN_HEADER_LENGTH:header_length]
    parse_ipv4_options(options)
    return Ipv4Packet(
        source=source,
        destination=destination,
        protocol=protocol,
        payload=packet[header_length:total_length],
        ttl=ttl,
        dscp=tos >> 2,
        ecn=tos & 0x03,
        identification=identification,
        flags=Ipv4Flags(flags_offset >> 13),
        fragment_offset=flags_offset & 0x1FFF,
        options=options,
        checksum=checksum,
    )


def parse_ipv4_options(options: bytes) -> tuple[Ipv4Option, ...]:
    """
    Split raw header options into L{Ipv4Option}s.  The walk stops after an
    END option; the bytes after it are padding.

    @raise DecodeError: an option's length byte is missing, below 2 or runs
        past the end of the options.
    """
    result: list[Ipv4Option] = []
    offset = 0
    size = len(options)
    while offset < size:
        option_type = options[offset]
        if option_type == _OPTION_END:
            result.append(Ipv4Option(option_type))
            break
        if option_type == _OPTION_NOP:
            result.append(Ipv4Option(option_type))
            offset += 1
            continue
        if offset + 2 > size:
            raise DecodeError(
                PROTOCOL, f"option {option_type} at offset {offset} has no length byte"
            )
        length = options[offset + 1]
        if length < 2 or offset + length > size:
            raise DecodeError(
                PROTOCOL, f"option {option_type} at offset {offset} has invalid length {length}"
            )
        result.append(Ipv4Option(option_type, options[offset + 2 : offset + length]))
        offset += length
    return tuple(result)


def build_ipv4(packet: Ipv4Packet) -> bytes:
    """
    Serialise C{packet}, computing the header checksum unless
    C{packet.checksum} is set.

    @raise ValueError: a field is out of range, the options are not a
        multiple of 4 bytes or longer than 40, or the packet would exceed
        65535 bytes.
    """
    options = packet.options
    if len(options) % 4 or len(options) > MAX_OPTIONS_LENGTH:
        raise ValueError(
            f"IPv4 options of {len(options)} bytes must be a multiple of 4 and at most 40; "
            "pad them with END or NOP options"
        )
    header_length = MIN_HEADER_LENGTH + len(options)
    total_length = header_length + len(packet.payload)
    if total_length > _MAX_TOTAL_LENGTH:
        raise ValueError(f"IPv4 packet of {total_length} bytes exceeds the maximum of 65535")
    if not 0 <= packet.dscp <= 63 or not 0 <= packet.ecn <= 3:
        raise ValueError(f"invalid DSCP {packet.dscp} or ECN {packet.ecn}: expected 0-63 and 0-3")
    if not 0 <= packet.flags <= 7 or not 0 <= packet.fragment_offset <= 0x1FFF:
        raise ValueError(
            f"invalid flags {packet.flags!r} or fragment offset {packet.fragment_offset}: "
            "expected 3 bits and 0 to 8191"
        )

    try:
        header = _HEADER.pack(
            0x40 | header_length // 4,
            packet.dscp << 2 | packet.ecn,
            total_length,
            packet.identification,
            int(packet.flags) << 13 | packet.fragment_offset,
            packet.ttl,
            packet.protocol,
            0 if packet.checksum is None else packet.checksum,
            packet.source,
            packet.destination,
        )
    except struct.error as error:
        raise ValueError(f"invalid IPv4 field in {packet!r}: {error}") from None

    header += options
    if packet.checksum is None:
        checksum = internet_checksum(header)
        header = header[:10] + checksum.to_bytes(2, "big") + header[12:]
    return header + packet.payload
