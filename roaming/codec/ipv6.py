# -*- test-case-name: tests.codec.test_ipv6 -*-
"""
Enough IPv6 (RFC 8200) and ICMPv6 (RFC 4443) to classify a frame.

L{parse_ipv6} reads the fixed header, L{walk_extension_headers} follows the
chain of extension headers to the upper-layer protocol, and L{parse_icmpv6}
reads the ICMPv6 type, which names the neighbor discovery messages (RFC 4861)
that a bridge treats like ARP.  Addresses are 16-byte C{bytes}.
"""

__all__ = [
    "EXTENSION_HEADERS",
    "HEADER_LENGTH",
    "MAX_EXTENSION_HEADERS",
    "Icmpv6Message",
    "Ipv6Chain",
    "Ipv6Packet",
    "NdpType",
    "build_icmpv6",
    "build_ipv6",
    "icmpv6_checksum",
    "parse_icmpv6",
    "parse_ipv6",
    "walk_extension_headers",
]

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from roaming.codec._checksum import internet_checksum
from roaming.errors import DecodeError

PROTOCOL = "ipv6"
ICMPV6_PROTOCOL = "icmpv6"

_HEADER = struct.Struct("!IHBB16s16s")
HEADER_LENGTH = _HEADER.size
"""Length of the fixed header, 40 bytes."""

MAX_EXTENSION_HEADERS = 8
"""
Maximum extension headers that L{walk_extension_headers} follows.  A longer
chain is rejected: RFC 8200 section 4.1 recommends at most one of each kind
except destination options, which may appear twice, so 8 covers every
ordinary packet.
"""

_HOP_BY_HOP = 0
_ROUTING = 43
_FRAGMENT = 44
_ESP = 50
_AUTHENTICATION = 51
_ICMPV6 = 58
_NO_NEXT_HEADER = 59
_DESTINATION_OPTIONS = 60

EXTENSION_HEADERS = frozenset(
    {_HOP_BY_HOP, _ROUTING, _FRAGMENT, _AUTHENTICATION, _DESTINATION_OPTIONS, 135, 139, 140}
)
"""
Next-header values that L{walk_extension_headers} steps over: hop-by-hop,
routing, fragment, authentication, destination options, mobility (135), HIP
(139) and shim6 (140).  ESP (50) ends the walk because what follows it is
encrypted.
"""

_FRAGMENT_HEADER = struct.Struct("!BxHI")
_ICMPV6_HEADER = struct.Struct("!BBH")
_PSEUDO_HEADER = struct.Struct("!16s16sI3xB")


class NdpType(IntEnum):
    """ICMPv6 neighbor discovery message types (RFC 4861 section 4)."""

    ROUTER_SOLICITATION = 133
    ROUTER_ADVERTISEMENT = 134
    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136
    REDIRECT = 137


@dataclass(frozen=True, slots=True)
class Ipv6Packet:
    """An IPv6 packet: the fixed header and everything after it."""

    source: bytes
    destination: bytes
    next_header: int
    """Type of the first header after the fixed header."""
    payload: bytes
    """Extension headers and upper-layer data, up to the payload length."""
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0


@dataclass(frozen=True, slots=True)
class Ipv6Chain:
    """The result of walking a packet's extension headers."""

    extension_headers: tuple[int, ...]
    """Next-header values of the extension headers, in order."""
    protocol: int
    """
    Upper-layer protocol, or 50 (ESP) or 59 (no next header) where the walk
    stopped.
    """
    upper_layer: bytes
    """Bytes after the last extension header."""
    fragment_offset: int = 0
    """
    Offset in 8-byte units from a fragment header.  When it is not 0, the
    upper-layer header is in an earlier fragment and C{upper_layer} is
    fragment data.
    """
    more_fragments: bool = False

    @property
    def is_fragment(self) -> bool:
        """Whether the packet is one fragment of a larger datagram."""
        return self.more_fragments or self.fragment_offset != 0


@dataclass(frozen=True, slots=True)
class Icmpv6Message:
    """An ICMPv6 message with its body left raw."""

    type: int
    code: int
    body: bytes = b""
    """The bytes after the checksum."""
    checksum: int | None = field(default=None, compare=False)
    """Checksum as received; L{build_icmpv6} computes it when C{None}."""

    @property
    def ndp_type(self) -> NdpType | None:
        """The neighbor discovery type, or C{None} for other messages."""
        if NdpType.ROUTER_SOLICITATION <= self.type <= NdpType.REDIRECT:
            return NdpType(self.type)
        return None


def parse_ipv6(packet: bytes) -> Ipv6Packet:
    """
    Parse the fixed IPv6 header.  Bytes after the payload length are
    ignored.

    @raise DecodeError: the packet is shorter than 40 bytes, the version is
        not 6, or the payload length exceeds the bytes present.  A jumbogram
        (payload length 0 with a jumbo payload option, RFC 2675) is not
        supported: its payload comes back empty.
    """
    size = len(packet)
    if size < HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"packet of {size} bytes is shorter than the 40-byte header")
    first_word, payload_length, next_header, hop_limit, source, destination = _HEADER.unpack_from(
        packet
    )
    version = first_word >> 28
    if version != 6:
        raise DecodeError(PROTOCOL, f"version {version} is not 6")
    end = HEADER_LENGTH + payload_length
    if end > size:
        raise DecodeError(
            PROTOCOL,
            f"payload length {payload_length} exceeds the {size - HEADER_LENGTH} bytes present",
        )
    return Ipv6Packet(
        source=source,
        destination=destination,
        next_header=next_header,
        payload=packet[HEADER_LENGTH:end],
        hop_limit=hop_limit,
        traffic_class=(first_word >> 20) & 0xFF,
        flow_label=first_word & 0xFFFFF,
    )


def build_ipv6(packet: Ipv6Packet) -> bytes:
    """
    Serialise C{packet}.

    @raise ValueError: an address is not 16 bytes, a field is out of range
        or the payload exceeds 65535 bytes.
    """
    if len(packet.source) != 16 or len(packet.destination) != 16:
        raise ValueError("IPv6 source and destination must be 16 bytes each")
    if not 0 <= packet.traffic_class <= 0xFF or not 0 <= packet.flow_label <= 0xFFFFF:
        raise ValueError(
            f"invalid traffic class {packet.traffic_class} or flow label {packet.flow_label}: "
            "expected 8 and 20 bits"
        )
    first_word = 6 << 28 | packet.traffic_class << 20 | packet.flow_label
    try:
        header = _HEADER.pack(
            first_word,
            len(packet.payload),
            packet.next_header,
            packet.hop_limit,
            packet.source,
            packet.destination,
        )
    except struct.error as error:
        raise ValueError(f"invalid IPv6 field in {packet!r}: {error}") from None
    return header + packet.payload


def walk_extension_headers(packet: Ipv6Packet) -> Ipv6Chain:
    """
    Follow the extension headers of C{packet} to the upper-layer protocol.

    The walk stops at the first header that is not in
    L{EXTENSION_HEADERS}, at ESP, at "no next header", and after a fragment
    header with a nonzero offset, because such a fragment does not start
    with the upper-layer header.

    @raise DecodeError: a header runs past the payload, hop-by-hop options
        are not first (RFC 8200 section 4.1), or the chain is longer than
        L{MAX_EXTENSION_HEADERS}.
    """
    payload = packet.payload
    size = len(payload)
    next_header = packet.next_header
    offset = 0
    seen: list[int] = []
    fragment_offset = 0
    more_fragments = False

    while next_header in EXTENSION_HEADERS:
        if len(seen) == MAX_EXTENSION_HEADERS:
            raise DecodeError(PROTOCOL, f"more than {MAX_EXTENSION_HEADERS} extension headers")
        if next_header == _HOP_BY_HOP and seen:
            raise DecodeError(PROTOCOL, "hop-by-hop options header is not the first header")
        if offset + 8 > size:
            raise DecodeError(
                PROTOCOL, f"extension header {next_header} at offset {offset} is truncated"
            )
        current = next_header
        next_header, length_field = payload[offset], payload[offset + 1]
        if current == _FRAGMENT:
            _, offset_flags, _ = _FRAGMENT_HEADER.unpack_from(payload, offset)
            fragment_offset = offset_flags >> 3
            more_fragments = bool(offset_flags & 1)
            length = 8
        elif current == _AUTHENTICATION:
            length = (length_field + 2) * 4  # RFC 4302 section 2.2
        else:
            length = (length_field + 1) * 8  # RFC 8200 section 4.3
        if offset + length > size:
            raise DecodeError(
                PROTOCOL, f"extension header {current} of {length} bytes runs past the payload"
            )
        seen.append(current)
        offset += length
        if fragment_offset:
            break

    return Ipv6Chain(tuple(seen), next_header, payload[offset:], fragment_offset, more_fragments)


def icmpv6_checksum(source: bytes, destination: bytes, message: bytes) -> int:
    """
    Compute the checksum of a serialised ICMPv6 message whose checksum field
    is zero, over the IPv6 pseudo-header (RFC 8200 section 8.1, RFC 4443
    section 2.3).
    """
    pseudo_header = _PSEUDO_HEADER.pack(source, destination, len(message), _ICMPV6)
    return internet_checksum(pseudo_header + message)


def parse_icmpv6(
    message: bytes, source: bytes | None = None, destination: bytes | None = None
) -> Icmpv6Message:
    """
    Parse an ICMPv6 message.

    @param source: IPv6 source address of the enclosing packet.
    @param destination: IPv6 destination address of the enclosing packet.
        When both are given, the checksum is verified.
    @raise DecodeError: the message is shorter than 4 bytes or the checksum
        is wrong.
    """
    size = len(message)
    if size < _ICMPV6_HEADER.size:
        raise DecodeError(
            ICMPV6_PROTOCOL, f"message of {size} bytes is shorter than the 4-byte header"
        )
    icmp_type, code, checksum = _ICMPV6_HEADER.unpack_from(message)
    if source is not None and destination is not None:
        pseudo_header = _PSEUDO_HEADER.pack(source, destination, size, _ICMPV6)
        if internet_checksum(pseudo_header + message) != 0:
            raise DecodeError(ICMPV6_PROTOCOL, f"checksum 0x{checksum:04x} is wrong")
    return Icmpv6Message(icmp_type, code, message[_ICMPV6_HEADER.size :], checksum)


def build_icmpv6(message: Icmpv6Message, source: bytes, destination: bytes) -> bytes:
    """
    Serialise C{message}, computing the checksum over the pseudo-header of
    C{source} and C{destination} unless C{message.checksum} is set.

    @raise ValueError: the type or code is out of range.
    """
    checksum = 0 if message.checksum is None else message.checksum
    try:
        data = _ICMPV6_HEADER.pack(message.type, message.code, checksum) + message.body
    except struct.error as error:
        raise ValueError(f"invalid ICMPv6 field in {message!r}: {error}") from None
    if message.checksum is None:
        checksum = icmpv6_checksum(source, destination, data)
        data = data[:2] + checksum.to_bytes(2, "big") + data[4:]
    return data
