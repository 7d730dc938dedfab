# -*- test-case-name: tests.ports.test_tunnels -*-
"""
The tunnel table of a GRE port: which aggregation ID names which tunnel
(remote IPv4 address and key), and the GRE framing the port needs to move
Ethernet frames through those tunnels.

Encapsulation follows RFC 2784 with the key and sequence number extensions
of RFC 2890 and protocol type 0x6558 (transparent Ethernet bridging).  The
outer TOS byte copies the inner IPv4 TOS, or derives from the 802.1p priority
of a non-IP frame.

NOTE: this is the port layer's own minimal framing: it always sends key and
sequence number, never a checksum, does no MTU handling and no keepalives.
Those belong to the tunnel engine in L{roaming.tunnel}; a GRE port accepts any
object with the same five methods (L{TunnelTable}).
"""

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Protocol

from roaming.errors import DecodeError

__all__ = [
    "DEFAULT_PCP_TO_TOS",
    "GRE_PROTOCOL_TEB",
    "MAX_TUNNELS",
    "GreTunnel",
    "GreTunnelTable",
    "TunnelCounters",
    "TunnelTable",
]

PROTOCOL = "gre"

GRE_PROTOCOL_TEB = 0x6558
"""GRE protocol type of transparent Ethernet bridging (IEEE EtherType registry)."""

MAX_TUNNELS = 4096
"""Upper bound on tunnels in one table."""

# RFC 2784 section 2: C (checksum present) is bit 0, version bits 13-15.
# RFC 2890 section 2: K (key present) is bit 2 and S (sequence present) bit 3.
_FLAG_CHECKSUM = 0x8000
_FLAG_KEY = 0x2000
_FLAG_SEQUENCE = 0x1000
_VERSION_MASK = 0x0007
# RFC 2784 section 2.3: a receiver discards a packet with any of bits 1-5
# set, and ignores bits 6-12.  RFC 2890 took bits 2 and 3 for K and S, so
# bits 1, 4 and 5 remain.
_RESERVED0_MASK = 0x4000 | 0x0800 | 0x0400

_GRE_BASE = struct.Struct("!HH")
_GRE_KEY_SEQUENCE = struct.Struct("!HHII")
_WORD = struct.Struct("!I")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_ETHER_TYPE = struct.Struct("!H")

_ETHERNET_HEADER_LENGTH = 14
_ZERO_HEADER = bytes(_ETHERNET_HEADER_LENGTH)
_IPV4_PROTOCOL_GRE = 47
_ETHERTYPE_IPV4 = 0x0800
_VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8})
_OUTER_TTL = 64
_SEQUENCE_MODULUS = 1 << 32

DEFAULT_PCP_TO_TOS = tuple(pcp << 5 for pcp in range(8))
"""Outer TOS for 802.1p priorities 0-7 of non-IP frames: class selector
code points CS0-CS7 (RFC 2474 section 4.2.2), so priority p maps to DSCP 8p."""


@dataclass(frozen=True, slots=True)
class GreTunnel:
    """
    One tunnel: a remote endpoint and the key that GRE packets carry.
    """

    agg_id: int
    """Aggregation ID of the tunnel on its GRE port."""
    remote: str
    """Remote IPv4 address, dotted quad."""
    key: int
    """32-bit GRE key (RFC 2890 section 2.1) of both directions."""


@dataclass(slots=True)
class TunnelCounters:
    """
    Per-table counters of packets the table dropped for a reason that is not
    malformed input.
    """

    unknown_peer: int = 0
    """Packets from an address and key with no tunnel in the table."""
    out_of_order: int = 0
    """Packets whose sequence number was not after the last one accepted."""


class TunnelTable(Protocol):
    """
    Interface of a tunnel table, as a GRE port uses it.

    The tunnel engine, L{roaming.tunnel.GreEndpoint}, has a richer interface
    of its own, which the GRE ports recognise by its type.
    """

    def tunnels(self) -> list[GreTunnel]:
        """
        Return the tunnels, whose aggregation IDs are the port's members.
        """

    def encapsulate(self, agg_id: int, frame: bytes) -> tuple[str, int, bytes]:
        """
        Return the remote address, the outer TOS and the GRE packet (GRE
        header and frame) of C{frame} sent into tunnel C{agg_id}.
        """

    def build_ipv4(self, remote: str, tos: int, gre_packet: bytes) -> bytes:
        """
        Return the outer IPv4 packet around C{gre_packet}, for a raw socket
        with C{IP_HDRINCL}.
        """

    def decapsulate(self, remote: str, gre_packet: bytes) -> tuple[int, bytes] | None:
        """
        Return the aggregation ID and the frame of a GRE packet from
        C{remote}, or L{None} for a packet that was counted and dropped.

        @raise DecodeError: the packet is malformed.
        """

    def parse_ipv4(self, packet: bytes) -> tuple[str, bytes]:
        """
        Return the source address and the payload of an IPv4 packet.

        @raise DecodeError: the packet is malformed.
        """


def _fold_checksum(data: bytes) -> int:
    # RFC 1071 Internet checksum; the GRE checksum covers the GRE header and
    # payload (RFC 2784 section 2.5).
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _outer_tos(frame: bytes, pcp_to_tos: tuple[int, ...]) -> int:
    """
    Return the outer TOS of C{frame}: the TOS of an IPv4 payload, else the
    table entry for the 802.1p priority of its VLAN tag, else the entry for
    priority 0.
    """
    offset = 12
    priority = 0
    if len(frame) < 14:
        return pcp_to_tos[0]
    (ether_type,) = _ETHER_TYPE.unpack_from(frame, offset)
    if ether_type in _VLAN_ETHERTYPES and len(frame) >= 18:
        priority = frame[14] >> 5
        offset = 16
        (ether_type,) = _ETHER_TYPE.unpack_from(frame, offset)
    if ether_type == _ETHERTYPE_IPV4 and len(frame) > offset + 3:
        return frame[offset + 3]
    return pcp_to_tos[priority]


class GreTunnelTable:
    """
    The tunnels of one GRE port, by aggregation ID and by (remote, key).

    Sequence numbers start at 0 per tunnel and wrap modulo 2**32 (RFC 2890
    section 2.2).  A received packet whose sequence number is not after the
    last one accepted on its tunnel, in serial-number arithmetic (RFC 1982
    section 3.2), is dropped and counted, so delivery stays in order.
    """

    def __init__(
        self,
        local: str,
        *,
        pcp_to_tos: tuple[int, ...] = DEFAULT_PCP_TO_TOS,
        max_tunnels: int = MAX_TUNNELS,
    ) -> None:
        """
        @param local: local IPv4 address, the source of outer packets.
        @param pcp_to_tos: outer TOS for each 802.1p priority 0-7.
        """
        if len(pcp_to_tos) != 8:
            raise ValueError(f"pcp_to_tos needs 8 entries, one per priority, got {pcp_to_tos!r}")
        self.local = local
        self._local_packed = ipaddress.IPv4Address(local).packed
        self._pcp_to_tos = tuple(pcp_to_tos)
        self._max_tunnels = max_tunnels
        self._by_agg_id: dict[int, GreTunnel] = {}
        self._by_endpoint: dict[tuple[str, int], int] = {}
        self._headers: dict[int, tuple[bytes, int]] = {}
        self._next_sequence: dict[int, int] = {}
        self._last_sequence: dict[int, int] = {}
        self.counters = TunnelCounters()

    def add_tunnel(self, tunnel: GreTunnel) -> None:
        """
        Add C{tunnel}.

        @raise ValueError: the aggregation ID or the (remote, key) pair is
            already in use, the key is not 32-bit, or the table is full.
        """
        endpoint = (tunnel.remote, tunnel.key)
        if tunnel.agg_id in self._by_agg_id:
            raise ValueError(f"aggregation ID {tunnel.agg_id} is already a tunnel; remove it first")
        if endpoint in self._by_endpoint:
            raise ValueError(f"tunnel to {tunnel.remote} with key {tunnel.key:#x} already exists")
        if not 0 <= tunnel.key < 1 << 32:
            raise ValueError(f"GRE key {tunnel.key} is not a 32-bit unsigned integer")
        if len(self._by_agg_id) >= self._max_tunnels:
            raise ValueError(f"tunnel table is full ({self._max_tunnels} tunnels)")
        ipaddress.IPv4Address(tunnel.remote)

        self._by_agg_id[tunnel.agg_id] = tunnel
        self._by_endpoint[endpoint] = tunnel.agg_id
        self._next_sequence[tunnel.agg_id] = 0
        # RFC 2890 section 2.2: the receiver starts from 2**32 - 1, so that
        # the first packet, numbered 0, is in order.
        self._last_sequence[tunnel.agg_id] = _SEQUENCE_MODULUS - 1

    def remove_tunnel(self, agg_id: int) -> None:
        """
        Remove the tunnel C{agg_id}; an unknown ID is ignored.
        """
        tunnel = self._by_agg_id.pop(agg_id, None)
        if tunnel is None:
            return
        del self._by_endpoint[(tunnel.remote, tunnel.key)]
        del self._next_sequence[agg_id]
        del self._last_sequence[agg_id]

    def tunnels(self) -> list[GreTunnel]:
        """
        Return the tunnels, ordered by aggregation ID.
        """
        return [self._by_agg_id[agg_id] for agg_id in sorted(self._by_agg_id)]

    def encapsulate(self, agg_id: int, frame: bytes) -> tuple[str, int, bytes]:
        """
        Return the remote address, the outer TOS and the GRE packet of
        C{frame} in tunnel C{agg_id}.

        @raise KeyError: no tunnel has aggregation ID C{agg_id}.
        """
        tunnel = self._by_agg_id[agg_id]
        sequence = self._next_sequence[agg_id]
        self._next_sequence[agg_id] = (sequence + 1) % _SEQUENCE_MODULUS
        header = _GRE_KEY_SEQUENCE.pack(
            _FLAG_KEY | _FLAG_SEQUENCE, GRE_PROTOCOL_TEB, tunnel.key, sequence
        )
        return tunnel.remote, _outer_tos(frame, self._pcp_to_tos), header + frame

    def build_ipv4(self, remote: str, tos: int, gre_packet: bytes) -> bytes:
        """
        Return the outer IPv4 header and C{gre_packet}, for a raw socket with
        C{IP_HDRINCL}.

        The identification and the header checksum are left zero: with
        C{IP_HDRINCL} Linux fills in a zero identification and always
        computes the checksum (raw(7)), after the TOS byte is in place.  DF
        is clear, so a router may fragment the outer packet.
        """
        header = _IPV4.pack(
            0x45,
            tos,
            20 + len(gre_packet),
            0,
            0,
            _OUTER_TTL,
            _IPV4_PROTOCOL_GRE,
            0,
            self._local_packed,
            socket.inet_aton(remote),
        )
        return header + gre_packet

    def parse_ipv4(self, packet: bytes) -> tuple[str, bytes]:
        """
        Return the source address and the payload of an IPv4 packet read from
        a raw socket.

        @raise DecodeError: truncated, not version 4, or not protocol 47.
        """
        if len(packet) < 20:
            raise DecodeError("ipv4", f"packet of {len(packet)} bytes is shorter than 20")
        version_ihl = packet[0]
        header_length = (version_ihl & 0x0F) * 4
        if version_ihl >> 4 != 4 or header_length < 20 or len(packet) < header_length:
            raise DecodeError(
                "ipv4", f"invalid version/IHL byte {version_ihl:#04x} for {len(packet)} bytes"
            )
        if packet[9] != _IPV4_PROTOCOL_GRE:
            raise DecodeError("ipv4", f"protocol {packet[9]} is not GRE (47)")
        return socket.inet_ntoa(packet[12:16]), packet[header_length:]

    def decapsulate(self, remote: str, gre_packet: bytes) -> tuple[int, bytes] | None:
        """
        Return the aggregation ID and the Ethernet frame carried by
        C{gre_packet} from C{remote}, or L{None} if the packet is from an
        unknown tunnel or out of order (both counted in L{counters}).

        @raise DecodeError: truncated header, non-zero version, any of
            reserved bits 1, 4 and 5 set, a protocol type other than 0x6558,
            or a wrong checksum. Also for a payload that is no Ethernet
            frame: shorter than the Ethernet header, or with an all-zero
            header.
        """
        if len(gre_packet) < 4:
            raise DecodeError(PROTOCOL, f"header of {len(gre_packet)} bytes is shorter than 4")
        flags, protocol_type = _GRE_BASE.unpack_from(gre_packet)
        if flags & _VERSION_MASK:
            raise DecodeError(PROTOCOL, f"version {flags & _VERSION_MASK} is not 0")
        if flags & _RESERVED0_MASK:
            raise DecodeError(PROTOCOL, f"reserved flag bits set in {flags:#06x}")
        if protocol_type != GRE_PROTOCOL_TEB:
            raise DecodeError(PROTOCOL, f"protocol type {protocol_type:#06x} is not 0x6558")

        offset = 4
        if flags & _FLAG_CHECKSUM:
            offset += 4
        key = None
        if flags & _FLAG_KEY:
            offset += 4
        sequence = None
        if flags & _FLAG_SEQUENCE:
            offset += 4
        if len(gre_packet) < offset:
            raise DecodeError(
                PROTOCOL,
                f"header needs {offset} bytes for flags {flags:#06x}, got {len(gre_packet)}",
            )

        field = 4
        if flags & _FLAG_CHECKSUM:
            if _fold_checksum(gre_packet) != 0:
                raise DecodeError(PROTOCOL, "checksum does not match")
            field += 4
        if flags & _FLAG_KEY:
            (key,) = _WORD.unpack_from(gre_packet, field)
            field += 4
        if flags & _FLAG_SEQUENCE:
            (sequence,) = _WORD.unpack_from(gre_packet, field)

        frame_length = len(gre_packet) - offset
        if frame_length < _ETHERNET_HEADER_LENGTH:
            raise DecodeError(
                PROTOCOL,
                f"frame of {frame_length} bytes is shorter than the 14-byte Ethernet header",
            )
        if gre_packet[offset : offset + _ETHERNET_HEADER_LENGTH] == _ZERO_HEADER:
            raise DecodeError(PROTOCOL, "frame has an Ethernet header that is all zero")

        # A packet without a key field belongs to the tunnel with key 0.
        agg_id = self._by_endpoint.get((remote, key or 0))
        if agg_id is None:
            self.counters.unknown_peer += 1
            return None

        if sequence is not None:
            last = self._last_sequence[agg_id]
            # RFC 1982 section 3.2: s1 < s2 when 0 < (s2 - s1) mod 2**32 < 2**31.
            if not 0 < (sequence - last) % _SEQUENCE_MODULUS < 1 << 31:
                self.counters.out_of_order += 1
                return None
            self._last_sequence[agg_id] = sequence

        return agg_id, gre_packet[offset:]
