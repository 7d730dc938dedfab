# -*- test-case-name: tests.tunnel.test_framing -*-
"""
Outer framing of tunnel packets: the outer IPv4 header and its fragments,
the GRE-in-UDP source port, the MTU arithmetic, and the ICMP "fragmentation
needed" reply for frames that do not fit.

MTU arithmetic: a tunnel packet is the outer IPv4 header (20 bytes), the
UDP header for GRE-in-UDP (8 bytes), the GRE header (4 bytes plus 4 for each
of checksum, key and sequence number in use) and the inner Ethernet frame
(14 bytes plus 4 per VLAN tag, then the inner IP packet; no FCS). So::

    max inner frame  = path MTU - 20 - (8 if UDP) - 4 - 4 * options
    inner IP MTU     = max inner frame - 14 - 4 * VLAN tags

With a 1500-byte path, raw GRE and a key, the largest frame is 1472 bytes
and an untagged inner IP packet may have 1458 bytes.
"""

from __future__ import annotations

__all__ = [
    "IPV4_HEADER_LENGTH",
    "UDP_HEADER_LENGTH",
    "OuterIPv4",
    "build_fragmentation_needed",
    "flow_source_port",
    "icmp_error_allowed",
    "max_inner_frame",
    "tunnel_overhead",
]

import struct

from roaming.codec.gre import internet_checksum

IPV4_HEADER_LENGTH = 20
UDP_HEADER_LENGTH = 8
ETHERNET_HEADER_LENGTH = 14
VLAN_TAG_LENGTH = 4

_MIN_IPV4_MTU = 68
_MAX_IPV4_LENGTH = 0xFFFF
_DONT_FRAGMENT = 0x4000
_MORE_FRAGMENTS = 0x2000

_IPV4 = struct.Struct("!BBHHHBBHII")
_IPV4_ADDRESSES = struct.Struct("!II")
_ICMP_UNREACHABLE = struct.Struct("!BBHHH")
_SHORT = struct.Struct("!H")
_WORD = struct.Struct("!I")
_MACS_AND_TYPE = struct.Struct("!QIH")
# Fragment word, protocol, and both addresses as one 64-bit number.
_IPV4_FLOW = struct.Struct("!6xHxB2xQ")
# First word (version, traffic class, flow label), next header, and both
# addresses as 64-bit halves.
_IPV6_FLOW = struct.Struct("!I2xB1xQQQQ")

_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_FLOW_PORT_PROTOCOLS = frozenset((6, 17, 132, 136))  # TCP, UDP, SCTP, UDP-Lite
_ICMP_PROTOCOL = 1
# ICMP types that report errors (RFC 792): destination unreachable, source
# quench, redirect, time exceeded and parameter problem. No error is sent
# about an error (RFC 1122 section 3.2.2).
_ICMP_ERROR_TYPES = frozenset((3, 4, 5, 11, 12))
# RFC 1812 section 4.3.2.3: an ICMP error quotes as much of the offending
# datagram as fits without the error exceeding 576 bytes.
_ICMP_ERROR_MAX_LENGTH = 576


def tunnel_overhead(
    *, udp: bool = False, checksum: bool = False, key: bool = False, sequence: bool = False
) -> int:
    """
    Compute the bytes a tunnel adds in front of an Ethernet frame: outer
    IPv4, UDP when C{udp}, and GRE with the options in use.
    """
    gre = 4 + 4 * (checksum + key + sequence)
    return IPV4_HEADER_LENGTH + (UDP_HEADER_LENGTH if udp else 0) + gre


def max_inner_frame(path_mtu: int, overhead: int) -> int:
    """
    Compute the largest Ethernet frame that fits unfragmented in a path of
    C{path_mtu} bytes after C{overhead} bytes of tunnel headers.

    @raise ValueError: when the path MTU is outside 68 to 65535 or leaves
        no room for an Ethernet header and a minimal IPv4 packet.
    """
    if not _MIN_IPV4_MTU <= path_mtu <= _MAX_IPV4_LENGTH:
        raise ValueError(f"path MTU {path_mtu!r} is outside the IPv4 range 68 to 65535")
    largest = path_mtu - overhead
    if largest < ETHERNET_HEADER_LENGTH + _MIN_IPV4_MTU:
        raise ValueError(
            f"path MTU {path_mtu} leaves {largest} bytes for a frame after {overhead} "
            f"bytes of headers: use a path MTU of at least {overhead + 82}"
        )
    return largest


class OuterIPv4:
    """
    Build outer IPv4 headers (RFC 791 section 3.1) from one source to one
    destination with a fixed protocol and TTL.

    The header checksum is computed from a sum of the fixed fields made
    once, plus the TOS, length, identification and fragment fields of each
    packet, so the TOS is in place before the checksum is computed.
    """

    __slots__ = ("_base_sum", "destination", "protocol", "source", "ttl")

    def __init__(self, source: int, destination: int, protocol: int, ttl: int = 64) -> None:
        if not 1 <= ttl <= 255:
            raise ValueError(f"TTL {ttl!r} is outside 1 to 255")
        self.source = source
        self.destination = destination
        self.protocol = protocol
        self.ttl = ttl
        self._base_sum = (
            0x4500
            + ((ttl << 8) | protocol)
            + (source >> 16)
            + (source & 0xFFFF)
            + (destination >> 16)
            + (destination & 0xFFFF)
        )

    def header(self, tos: int, total_length: int, identification: int, fragment: int) -> bytes:
        """
        Build one 20-byte header.

        @param fragment: the flags and fragment offset word (DF is 0x4000,
            MF is 0x2000, the offset counts 8-byte units).
        """
        total = self._base_sum + tos + total_length + identification + fragment
        total = (total & 0xFFFF) + (total >> 16)
        checksum = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
        return _IPV4.pack(
            0x45,
            tos,
            total_length,
            identification,
            fragment,
            self.ttl,
            self.protocol,
            checksum,
            self.source,
            self.destination,
        )

    def packets(
        self,
        payload_parts: tuple[bytes, ...],
        payload_length: int,
        tos: int,
        identification: int,
        path_mtu: int,
        dont_fragment: bool,
    ) -> list[bytes]:
        """
        Build the outer packet for a payload given as consecutive parts,
        fragmented as RFC 791 section 2.3 describes when it exceeds
        C{path_mtu}.

        Fragments never carry DF. Every fragment except the last carries a
        multiple of 8 payload bytes.
        """
        total = IPV4_HEADER_LENGTH + payload_length
        if total <= path_mtu:
            fragment = _DONT_FRAGMENT if dont_fragment else 0
            return [b"".join((self.header(tos, total, identification, fragment), *payload_parts))]

        payload = b"".join(payload_parts)
        step = (path_mtu - IPV4_HEADER_LENGTH) & ~7
        result = []
        for offset in range(0, payload_length, step):
            chunk = payload[offset : offset + step]
            more = _MORE_FRAGMENTS if offset + step < payload_length else 0
            header = self.header(
                tos, IPV4_HEADER_LENGTH + len(chunk), identification, more | (offset >> 3)
            )
            result.append(header + chunk)
        return result


def flow_source_port(frame: bytes) -> int:
    """
    Choose a GRE-in-UDP source port from a hash of the flow that C{frame}
    belongs to (RFC 8086 section 3.2.1), within 49152 to 65535.

    The hash covers the MAC addresses and, for IPv4 and IPv6, the addresses
    and protocol, plus the ports of TCP, UDP, SCTP and UDP-Lite when the
    packet is not a non-first fragment. VLAN tags are skipped. Packets of
    one flow get one port, so that the path does not reorder them.
    """
    length = len(frame)
    if length < 14:
        return 49152
    high, low, ethertype = _MACS_AND_TYPE.unpack_from(frame, 0)
    offset = 12
    tags = 0
    while ethertype in _VLAN_TPIDS and tags < 4 and offset + 6 <= length:
        ethertype = _SHORT.unpack_from(frame, offset + 4)[0]
        offset += 4
        tags += 1
    offset += 2

    # CPython hashes tuples of ints with xxHash and no per-process salt,
    # unlike str and bytes, so the port of a flow is the same in every run.
    if ethertype == _ETHERTYPE_IPV4 and offset + 20 <= length:
        fragment, protocol, addresses = _IPV4_FLOW.unpack_from(frame, offset)
        ports = 0
        transport = offset + (frame[offset] & 0x0F) * 4
        if protocol in _FLOW_PORT_PROTOCOLS and not fragment & 0x1FFF and transport + 4 <= length:
            ports = _WORD.unpack_from(frame, transport)[0]
        digest = hash((high, low, addresses, protocol, ports))
    elif ethertype == _ETHERTYPE_IPV6 and offset + 40 <= length:
        # Flow label, next header and both addresses (RFC 6438 section 4).
        first_word, *rest = _IPV6_FLOW.unpack_from(frame, offset)
        digest = hash((high, low, first_word & 0xFFFFF, *rest))
    else:
        digest = hash((high, low))
    return 49152 | (digest & 0x3FFF)


def icmp_error_allowed(frame: bytes, ip_offset: int) -> bool:
    """
    Decide whether an ICMP error may be sent about the IPv4 packet at
    C{ip_offset} in the Ethernet frame C{frame}.

    RFC 1122 section 3.2.2 forbids an error about an ICMP error and about a
    non-initial fragment. It forbids one about a packet sent to a link-layer
    broadcast or multicast address or to an IPv4 multicast or broadcast
    address, too. Nor may one go to a source that is not a single host
    (0.0.0.0, loopback, multicast, class E or broadcast). A frame shorter
    than its IPv4 header gets no error either.
    """
    header_length = (frame[ip_offset] & 0x0F) * 4
    if len(frame) < ip_offset + max(header_length, IPV4_HEADER_LENGTH):
        return False
    if frame[0] & 0x01:
        return False
    fragment = _SHORT.unpack_from(frame, ip_offset + 6)[0]
    inner_source, inner_destination = _IPV4_ADDRESSES.unpack_from(frame, ip_offset + 12)
    if (
        fragment & 0x1FFF
        or inner_destination >= 0xE0000000
        or inner_source == 0
        or inner_source >= 0xE0000000
        or inner_source >> 24 == 127
    ):
        return False
    if frame[ip_offset + 9] == _ICMP_PROTOCOL:
        data = ip_offset + header_length
        if len(frame) > data and frame[data] in _ICMP_ERROR_TYPES:
            return False
    return True


def build_fragmentation_needed(
    frame: bytes,
    ip_offset: int,
    next_hop_mtu: int,
    source: int,
    identification: int,
) -> bytes | None:
    """
    Build the Ethernet frame of an ICMP "destination unreachable,
    fragmentation needed and DF set" message (RFC 792 type 3 code 4) about
    the IPv4 packet at C{ip_offset} in C{frame}, addressed to its sender.

    The next-hop MTU is in the low 16 bits of the second word (RFC 1191
    section 4). The Ethernet addresses are swapped and the VLAN tags kept,
    so the reply goes back the way the frame came. C{source} is the IPv4
    source address of the reply.

    @return: the frame, or C{None} when L{icmp_error_allowed} forbids an
        error about this packet.
    """
    if not icmp_error_allowed(frame, ip_offset):
        return None
    total_length = _SHORT.unpack_from(frame, ip_offset + 2)[0]
    inner_source = _WORD.unpack_from(frame, ip_offset + 12)[0]

    quote_limit = _ICMP_ERROR_MAX_LENGTH - IPV4_HEADER_LENGTH - 8
    quote = frame[ip_offset : ip_offset + min(total_length, quote_limit)]
    icmp = _ICMP_UNREACHABLE.pack(3, 4, 0, 0, next_hop_mtu) + quote
    icmp = icmp[:2] + _SHORT.pack(internet_checksum(icmp)) + icmp[4:]

    outer = OuterIPv4(source, inner_source, _ICMP_PROTOCOL)
    ip_header = outer.header(0, IPV4_HEADER_LENGTH + len(icmp), identification, 0)
    ethernet = frame[6:12] + frame[0:6] + frame[12 : ip_offset - 2] + b"\x08\x00"
    return ethernet + ip_header + icmp
