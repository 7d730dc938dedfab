# -*- test-case-name: tests.tunnel.test_endpoint -*-
"""
L{GreEndpoint}: the sans-IO side of one GRE aggregation port.

The endpoint maps each aggregation ID to one tunnel, a remote IPv4 address
and a GRE key, and turns Ethernet frames into outer packets and back. The
port that owns the sockets calls L{GreEndpoint.encapsulate} for every frame
the bridge sends to a tunnel, L{GreEndpoint.decapsulate} for every packet a
socket receives, and L{GreEndpoint.poll} at L{GreEndpoint.next_deadline};
after each of these it sends what L{GreEndpoint.drain_packets} returns,
hands what L{GreEndpoint.drain_frames} returns to the bridge, and acts on
L{GreEndpoint.drain_events}.

Keepalive wire format: the reflected keepalive that Cisco's tech note "GRE
Tunnel Keepalives" (document 64565) describes, so that a plain GRE peer
that routes the inner packet sends it back. The request is a GRE packet to
the remote with protocol type 0x0800 and the tunnel's key. It carries an
inner IPv4 packet from the remote to the local address, protocol 47, whose
payload is a bare GRE header with protocol type 0 and the same key. The
remote sends the inner packet back as it is, and the local end takes any
GRE packet with protocol type 0 and a tunnel's key from that tunnel's
remote as the reply.

This endpoint answers such requests itself, but only a bare one: the inner
packet must be an unfragmented IPv4 packet without options from its own
address to the tunnel's remote, carrying nothing but the GRE header with
protocol type 0 and the tunnel's key. It then builds the reply itself, with
its own TTL and TOS, instead of sending the received bytes, so a request
can neither carry other content through the tunnel nor steer a packet
elsewhere. Anything else is counted as "keepalive-invalid". Over
GRE-in-UDP the reply is the GRE header alone, sent as the UDP payload,
because the unprivileged UDP socket cannot send an IPv4 header.
"""

from __future__ import annotations

__all__ = [
    "COUNTER_NAMES",
    "DEFAULT_MAX_FRAME_SIZE",
    "GreEndpoint",
    "Outgoing",
    "Transport",
    "TunnelState",
]

import enum
import ipaddress
import struct
from collections.abc import Sequence
from typing import NamedTuple

from roaming.codec.gre import GRE_IP_PROTOCOL, GreFlags, ProtocolType, internet_checksum
from roaming.tunnel.framing import (
    ETHERNET_HEADER_LENGTH,
    IPV4_HEADER_LENGTH,
    OuterIPv4,
    build_fragmentation_needed,
    flow_source_port,
    icmp_error_allowed,
    max_inner_frame,
    tunnel_overhead,
)
from roaming.tunnel.key import RESERVED_KEY_BITS
from roaming.tunnel.liveness import Keepalive, LinkState, TunnelDown, TunnelUp
from roaming.tunnel.qos import DEFAULT_PCP_TO_DSCP, VLAN_TPIDS, OuterTos
from roaming.tunnel.sequence import (
    DEFAULT_RESYNC_AFTER,
    DEFAULT_WINDOW,
    SequenceReceiver,
    SequenceVerdict,
)


class Transport(enum.Enum):
    """
    The transport of outer packets.
    """

    RAW_IPV4 = "raw-ipv4"
    """IPv4 protocol 47 through a raw socket with IP_HDRINCL: the endpoint
    builds the whole outer IPv4 header, fragments included."""

    GRE_IN_UDP = "gre-in-udp"
    """GRE-in-UDP (RFC 8086) to UDP port 4754. The kernel builds the IPv4
    and UDP headers, and the endpoint supplies the GRE packet, the TOS and
    the source port."""


class Outgoing(NamedTuple):
    """
    Packets for one tunnel's remote end.
    """

    address: str
    """The remote IPv4 address, dotted, as C{socket.sendto} takes it."""

    packets: tuple[bytes, ...]
    """For L{Transport.RAW_IPV4}, complete IPv4 packets (several when the
    endpoint fragmented); for L{Transport.GRE_IN_UDP}, one UDP payload."""

    tos: int
    """The outer TOS byte. It is already in the header of raw IPv4
    packets; a GRE-in-UDP port sets it on the socket or in an IP_TOS
    control message."""

    source_port: int
    """The UDP source port for GRE-in-UDP (49152 to 65535), else 0."""


# Every counter the endpoint keeps. "frames-encapsulated" and
# "frames-decapsulated" count frames that went through. The others name why a
# frame or packet went no further, or count a control event.
COUNTER_NAMES = (
    "frames-encapsulated",
    "frames-decapsulated",
    "outer-fragmented",
    "fragmentation-needed-sent",
    "fragmentation-needed-rate-limited",
    "too-big-dropped",
    "unknown-tunnel",
    "runt-frame",
    "oversized-frame",
    "outer-truncated",
    "outer-not-ipv4",
    "outer-not-gre",
    "outer-fragment",
    "gre-truncated",
    "gre-version",
    "gre-reserved-bits",
    "gre-checksum",
    "unknown-remote",
    "unknown-key",
    "key-reserved-bits",
    "sequence-duplicate",
    "sequence-out-of-order",
    "sequence-stale",
    "sequence-missing",
    "sequence-resynchronized",
    "unsupported-protocol",
    "keepalive-sent",
    "keepalive-reply",
    "keepalive-reflected",
    "keepalive-invalid",
    "ecn-congestion-marked",
    "ecn-not-ect-dropped",
    "queue-full",
)

_BASE = struct.Struct("!HH")
_WORD = struct.Struct("!I")
_SHORT = struct.Struct("!H")
_ADDRESSES = struct.Struct("!II")
_CHECKSUM_FIELD = struct.Struct("!HH")

# RFC 2784 section 2.3: bits 1, 4 and 5 must be zero (RFC 2890 took bits 2
# and 3), and the version (bits 13 to 15) must be 0.
_REJECTED_RESERVED0 = 0x4000 | 0x0800 | 0x0400
_VERSION_MASK = 0x0007
# Plain ints, because bit operations on IntFlag members build new enum
# objects, which costs about a microsecond per packet.
_FLAG_CHECKSUM = int(GreFlags.CHECKSUM)
_FLAG_KEY = int(GreFlags.KEY)
_FLAG_SEQUENCE = int(GreFlags.SEQUENCE)
_TRANSPARENT_ETHERNET_BRIDGING = int(ProtocolType.TRANSPARENT_ETHERNET_BRIDGING)
# GRE header length indexed by the top four flag bits (C, R, K, S).
_GRE_HEADER_LENGTHS = tuple(
    4 + 4 * (bool(bits & 8) + bool(bits & 2) + bool(bits & 1)) for bits in range(16)
)
# Version and IHL, TOS, total length, fragment word and protocol of IPv4.
_OUTER_FIELDS = struct.Struct("!BBH2xH1xB")
_DONT_FRAGMENT = 0x4000
_ACCEPT = SequenceVerdict.ACCEPT
_RESYNCHRONIZED = SequenceVerdict.RESYNCHRONIZED
_SEQUENCE_DROPS = {
    SequenceVerdict.DUPLICATE: "sequence-duplicate",
    SequenceVerdict.OUT_OF_ORDER: "sequence-out-of-order",
    SequenceVerdict.STALE: "sequence-stale",
}

_KEEPALIVE_TTL = 255
_KEEPALIVE_TOS = 0xC0  # CS6, the network control class of RFC 4594.
_QUEUE_LIMIT = 1024
_DEFAULT_MAX_TUNNELS = 4096
_ETHERTYPE_IPV4 = 0x0800
_FRAGMENT_BITS = 0x3FFF  # MF and the fragment offset

DEFAULT_MAX_FRAME_SIZE = 1522
"""The default largest inner frame, in bytes, that L{GreEndpoint.decapsulate}
delivers: a 1500-byte IP MTU behind an Ethernet header and two VLAN tags,
without FCS."""

_LARGEST_FRAME_SIZE = 0xFFFF - IPV4_HEADER_LENGTH - 4


def _address_to_int(address: str | int | ipaddress.IPv4Address) -> int:
    return int(ipaddress.IPv4Address(address))


class TunnelState:
    """
    Configuration, precomputed headers and counters of one tunnel.

    Read-only for callers, through L{GreEndpoint.tunnel}.

    @ivar agg_id: the aggregation ID.
    @ivar remote: the remote IPv4 address, dotted.
    @ivar key: the 32-bit GRE key, or C{None} for a tunnel without K.
    @ivar max_frame: the largest Ethernet frame sent unfragmented.
    @ivar frames_sent: count of frames encapsulated.
    @ivar frames_received: count of frames decapsulated.
    @ivar keepalive: the L{Keepalive}, or C{None} when keepalives are off.
    @ivar keepalive_reply: the bare GRE header of a keepalive reply on this
        tunnel: protocol type 0 and the key.
    """

    __slots__ = (
        "agg_id",
        "checksum",
        "dont_fragment",
        "frames_received",
        "frames_sent",
        "gre_prefix",
        "keepalive",
        "keepalive_reply",
        "key",
        "max_frame",
        "next_sequence",
        "outer",
        "overhead",
        "path_mtu",
        "receiver",
        "remote",
        "remote_int",
        "sequence",
    )

    @property
    def link_state(self) -> LinkState:
        """
        The keepalive state, or L{LinkState.UP} when keepalives are off.
        """
        if self.keepalive is None:
            return LinkState.UP
        return self.keepalive.state


class GreEndpoint:
    """
    GRE encapsulation and decapsulation for the tunnels of one aggregation
    port.

    @ivar counters: counts by name; L{COUNTER_NAMES} lists them.
    @ivar max_frame_size: the largest inner frame L{decapsulate} delivers.
    """

    def __init__(
        self,
        local_address: str | int | ipaddress.IPv4Address,
        *,
        transport: Transport = Transport.RAW_IPV4,
        pcp_to_dscp: Sequence[int] = DEFAULT_PCP_TO_DSCP,
        ttl: int = 64,
        icmp_source: str | int | ipaddress.IPv4Address | None = None,
        max_tunnels: int = _DEFAULT_MAX_TUNNELS,
        icmp_rate: float = 100.0,
        icmp_burst: int = 10,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        """
        @param local_address: the IPv4 source address of outer packets.
        @param pcp_to_dscp: the DSCP for each 802.1p priority of non-IP
            frames; see L{roaming.tunnel.qos}.
        @param ttl: the TTL of outer packets.
        @param icmp_source: the source address of ICMP "fragmentation
            needed" replies; the local address when C{None}.
        @param max_tunnels: the maximum number of tunnels L{add_tunnel}
            accepts.
        @param icmp_rate: the ICMP replies per second allowed on average
            (RFC 1812 section 4.3.2.8 recommends that routers limit it).
        @param icmp_burst: the ICMP replies allowed at once after a quiet
            period.
        @param max_frame_size: the largest inner frame, in bytes without
            FCS, that L{decapsulate} delivers; longer ones are counted as
            "oversized-frame". Match it to the MTU of the devices the bridge
            sends to: a frame longer than theirs cannot be delivered whole.
        """
        if not ETHERNET_HEADER_LENGTH <= max_frame_size <= _LARGEST_FRAME_SIZE:
            raise ValueError(
                f"largest inner frame {max_frame_size!r} must be between "
                f"{ETHERNET_HEADER_LENGTH} and {_LARGEST_FRAME_SIZE} bytes"
            )
        if not icmp_rate > 0 or icmp_burst < 1:
            raise ValueError(
                f"ICMP rate {icmp_rate!r} per second and burst {icmp_burst!r} must be positive"
            )

        self.local_address = _address_to_int(local_address)
        self.transport = transport
        self.ttl = ttl
        self.icmp_source = (
            self.local_address if icmp_source is None else _address_to_int(icmp_source)
        )
        self.max_tunnels = max_tunnels
        self.max_frame_size = max_frame_size
        self._raw = transport is Transport.RAW_IPV4
        self._tos = OuterTos(pcp_to_dscp)
        self._identification = 0

        self.icmp_rate = icmp_rate
        self.icmp_burst = icmp_burst
        self._icmp_tokens = float(icmp_burst)
        self._icmp_refilled_at: float | None = None

        self._tunnels: dict[int, TunnelState] = {}
        # remote (both as dotted str and as int) -> {key or None: tunnel}
        self._by_remote: dict[str | int, dict[int | None, TunnelState]] = {}

        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._packets: list[Outgoing] = []
        self._frames: list[tuple[int, bytes]] = []
        self._events: list[TunnelUp | TunnelDown] = []

    # Tunnel table

    def add_tunnel(
        self,
        agg_id: int,
        remote: str | int | ipaddress.IPv4Address,
        key: int | None = None,
        *,
        checksum: bool = False,
        sequence: bool = False,
        sequence_window: int = DEFAULT_WINDOW,
        sequence_resync_after: int = DEFAULT_RESYNC_AFTER,
        path_mtu: int = 1500,
        dont_fragment: bool = True,
        keepalive_period: float | None = None,
        keepalive_misses: int = 3,
    ) -> TunnelState:
        """
        Add the tunnel named C{agg_id} to C{remote} with the GRE C{key}
        (see L{roaming.tunnel.key.pack_key}).

        @param checksum: send GRE checksums. Received checksums are
            verified either way.
        @param sequence: number sent packets, and drop received data
            packets that carry no number or arrive out of order (see
            L{roaming.tunnel.sequence}).
        @param sequence_window: how far behind a number is out of order
            rather than stale.
        @param sequence_resync_after: how many stale packets with
            consecutive numbers make the receiver follow a restarted sender.
        @param path_mtu: the IPv4 MTU of the path to the remote.
        @param dont_fragment: set DF on outer packets that fit the path MTU.
        @param keepalive_period: seconds between keepalives, or C{None} for
            no keepalives (the tunnel then counts as always up).
        @param keepalive_misses: unanswered keepalives that take the tunnel
            down.
        @raise ValueError: when the aggregation ID or the remote and key are
            already in use, the table is full, or a value is out of range.
        """
        if agg_id in self._tunnels:
            raise ValueError(f"aggregation ID {agg_id!r} is already a tunnel: remove it first")
        if len(self._tunnels) >= self.max_tunnels:
            raise ValueError(
                f"tunnel table is full ({self.max_tunnels} tunnels): "
                "remove a tunnel or raise max_tunnels"
            )
        if key is not None and not 0 <= key <= 0xFFFFFFFF:
            raise ValueError(f"GRE key {key!r} does not fit 32 bits")
        remote_int = _address_to_int(remote)
        remote_str = str(ipaddress.IPv4Address(remote_int))
        peers = self._by_remote.get(remote_int, {})
        if key in peers:
            raise ValueError(
                f"remote {remote_str} with key {key!r} is already aggregation ID "
                f"{peers[key].agg_id}"
            )

        tunnel = TunnelState()
        tunnel.agg_id = agg_id
        tunnel.remote = remote_str
        tunnel.remote_int = remote_int
        tunnel.key = key
        tunnel.checksum = checksum
        tunnel.sequence = sequence
        tunnel.next_sequence = 0
        tunnel.receiver = (
            SequenceReceiver(sequence_window, sequence_resync_after) if sequence else None
        )
        tunnel.path_mtu = path_mtu
        tunnel.dont_fragment = dont_fragment
        overhead = tunnel_overhead(
            udp=not self._raw, checksum=checksum, key=key is not None, sequence=sequence
        )
        tunnel.overhead = overhead
        tunnel.max_frame = max_inner_frame(path_mtu, overhead)
        tunnel.outer = OuterIPv4(self.local_address, remote_int, GRE_IP_PROTOCOL, self.ttl)
        flags = (
            (GreFlags.CHECKSUM if checksum else 0)
            | (GreFlags.KEY if key is not None else 0)
            | (GreFlags.SEQUENCE if sequence else 0)
        )
        prefix = _BASE.pack(flags, ProtocolType.TRANSPARENT_ETHERNET_BRIDGING)
        if checksum:
            prefix += b"\x00\x00\x00\x00"
        if key is not None:
            prefix += _WORD.pack(key)
        tunnel.gre_prefix = prefix
        tunnel.keepalive_reply = _BASE.pack(
            GreFlags.KEY if key is not None else 0, ProtocolType.KEEPALIVE_REPLY
        ) + (_WORD.pack(key) if key is not None else b"")
        tunnel.keepalive = (
            Keepalive(agg_id, keepalive_period, keepalive_misses)
            if keepalive_period is not None
            else None
        )
        tunnel.frames_sent = 0
        tunnel.frames_received = 0

        self._tunnels[agg_id] = tunnel
        peers[key] = tunnel
        self._by_remote[remote_int] = peers
        self._by_remote[remote_str] = peers
        return tunnel

    def remove_tunnel(self, agg_id: int) -> None:
        """
        Remove a tunnel; its pending keepalive state is forgotten.

        @raise KeyError: when no tunnel has this aggregation ID.
        """
        tunnel = self._tunnels.pop(agg_id)
        peers = self._by_remote[tunnel.remote_int]
        del peers[tunnel.key]
        if not peers:
            del self._by_remote[tunnel.remote_int]
            del self._by_remote[tunnel.remote]

    def set_path_mtu(self, agg_id: int, path_mtu: int) -> None:
        """
        Change the path MTU of a tunnel, for example after an ICMP
        "fragmentation needed" about an outer packet (RFC 1191).

        @raise KeyError: when no tunnel has this aggregation ID.
        @raise ValueError: when the path MTU is out of range (see
            L{roaming.tunnel.framing.max_inner_frame}).
        """
        tunnel = self._tunnels[agg_id]
        tunnel.max_frame = max_inner_frame(path_mtu, tunnel.overhead)
        tunnel.path_mtu = path_mtu

    def tunnel(self, agg_id: int) -> TunnelState:
        """
        Return the tunnel named C{agg_id}.

        @raise KeyError: when there is none.
        """
        return self._tunnels[agg_id]

    def tunnels(self) -> list[TunnelState]:
        """
        Return every tunnel, in the order they were added.
        """
        return list(self._tunnels.values())

    def lookup(self, remote: str | int, key: int | None) -> int | None:
        """
        Return the aggregation ID of the tunnel to C{remote} with C{key}, or
        C{None}.
        """
        tunnel = self._by_remote.get(remote, {}).get(key)
        return None if tunnel is None else tunnel.agg_id

    # Encapsulation

    def encapsulate(self, agg_id: int, frame: bytes, now: float) -> Outgoing | None:
        """
        Encapsulate one Ethernet frame for the tunnel named C{agg_id}.

        @return: the packets to send, or C{None} when the frame is not sent.
            Then a counter names the reason. When the reason is an inner
            IPv4 packet with DF that does not fit, an ICMP "fragmentation
            needed" frame waits in L{drain_frames}.
        """
        tunnel = self._tunnels.get(agg_id)
        if tunnel is None:
            self.counters["unknown-tunnel"] += 1
            return None
        length = len(frame)
        if length < 14:
            self.counters["runt-frame"] += 1
            return None
        if length > 15 and frame[12] == 0x08 and frame[13] == 0x00 and frame[14] >> 4 == 4:
            # Untagged IPv4, the common case: copy its TOS without a call.
            tos = frame[15]
        else:
            tos = self._tos.tos_for_frame(frame)
        if length > tunnel.max_frame and not self._admit_oversized(tunnel, frame, now):
            return None

        gre = tunnel.gre_prefix
        if tunnel.sequence:
            gre += _WORD.pack(tunnel.next_sequence)
            tunnel.next_sequence = (tunnel.next_sequence + 1) & 0xFFFFFFFF
        if tunnel.checksum:
            gre = gre[:4] + _CHECKSUM_FIELD.pack(_checksum_of_parts(gre, frame), 0) + gre[8:]
        tunnel.frames_sent += 1
        self.counters["frames-encapsulated"] += 1

        if not self._raw:
            # RFC 6040 section 4.1 compatibility mode: the outer ECN field is
            # Not-ECT, because the UDP socket does not report the outer TOS
            # to decapsulate, which therefore cannot pass a CE mark inwards.
            tos &= 0xFC
            return Outgoing(tunnel.remote, (gre + frame,), tos, flow_source_port(frame))
        identification = self._identification
        self._identification = (identification + 1) & 0xFFFF
        total_length = 20 + len(gre) + length
        if total_length <= tunnel.path_mtu:
            header = tunnel.outer.header(
                tos, total_length, identification, _DONT_FRAGMENT if tunnel.dont_fragment else 0
            )
            return Outgoing(tunnel.remote, (b"".join((header, gre, frame)),), tos, 0)
        packets = tunnel.outer.packets(
            (gre, frame),
            len(gre) + length,
            tos,
            identification,
            tunnel.path_mtu,
            tunnel.dont_fragment,
        )
        self.counters["outer-fragmented"] += 1
        return Outgoing(tunnel.remote, tuple(packets), tos, 0)

    def _admit_oversized(self, tunnel: TunnelState, frame: bytes, now: float) -> bool:
        """
        Decide what happens to a frame longer than the tunnel's largest
        unfragmented frame. An inner IPv4 packet with DF is dropped. It gets
        an ICMP "fragmentation needed" reply when one may be sent about it,
        and is counted as "too-big-dropped" otherwise. Only a reply that is
        built takes a token of the rate limit. Anything else is sent in outer
        fragments (raw IPv4) or left to the kernel to fragment (GRE-in-UDP).

        @return: whether the frame is to be sent.
        """
        ip_offset = _ipv4_offset(frame)
        if ip_offset is not None and _SHORT.unpack_from(frame, ip_offset + 6)[0] & 0x4000:
            if not icmp_error_allowed(frame, ip_offset):
                # RFC 1122 section 3.2.2: no reply, so no token is spent.
                self.counters["too-big-dropped"] += 1
                return False
            if not self._take_icmp_token(now):
                self.counters["fragmentation-needed-rate-limited"] += 1
                return False
            next_hop_mtu = tunnel.max_frame - ip_offset
            identification = self._identification
            self._identification = (identification + 1) & 0xFFFF
            reply = build_fragmentation_needed(
                frame, ip_offset, next_hop_mtu, self.icmp_source, identification
            )
            if reply is None:
                self.counters["too-big-dropped"] += 1
            elif self._queue(self._frames, (tunnel.agg_id, reply)):
                self.counters["fragmentation-needed-sent"] += 1
            return False
        if len(frame) > 0xFFFF - tunnel.overhead:
            # No IPv4 packet, fragmented or not, can hold it.
            self.counters["too-big-dropped"] += 1
            return False
        if not self._raw:
            # The GRE port's UDP socket has path MTU discovery off
            # (IP_PMTUDISC_DONT), so Linux fragments a datagram larger than
            # the route's MTU and never sets DF (ip(7)). This is counted as
            # fragmented.
            self.counters["outer-fragmented"] += 1
        return True

    def _take_icmp_token(self, now: float) -> bool:
        """
        Take one token from the ICMP token bucket, refilled at C{icmp_rate}
        per second up to C{icmp_burst}.

        @return: whether a reply may be sent.
        """
        if self._icmp_refilled_at is not None:
            elapsed = max(0.0, now - self._icmp_refilled_at)
            self._icmp_tokens = min(
                float(self.icmp_burst), self._icmp_tokens + elapsed * self.icmp_rate
            )
        self._icmp_refilled_at = now
        if self._icmp_tokens < 1.0:
            return False
        self._icmp_tokens -= 1.0
        return True

    # Decapsulation

    def decapsulate(self, remote: str | int, packet: bytes, now: float) -> tuple[int, bytes] | None:
        """
        Decapsulate one received packet.

        @param remote: the outer source address, as C{socket.recvfrom}
            returns it (dotted) or as an int.
        @param packet: for L{Transport.RAW_IPV4}, the IPv4 packet as a raw
            socket returns it, header included; for L{Transport.GRE_IN_UDP},
            the UDP payload.
        @return: the aggregation ID and the Ethernet frame, or C{None} when
            the packet was a keepalive or was dropped (a counter names which).
        """
        counters = self.counters
        end = len(packet)
        outer_tos = 0
        offset = 0
        if self._raw:
            if end < 20:
                counters["outer-truncated"] += 1
                return None
            version_ihl, outer_tos, total_length, fragment, protocol = _OUTER_FIELDS.unpack_from(
                packet, 0
            )
            offset = (version_ihl & 0x0F) << 2
            if (
                version_ihl >> 4 != 4
                or offset < 20
                or not offset <= total_length <= end
                or protocol != GRE_IP_PROTOCOL
                or fragment & 0x3FFF
            ):
                self._count_outer_drop(packet)
                return None
            end = total_length

        if end - offset < 4:
            counters["gre-truncated"] += 1
            return None
        flags, protocol_type = _BASE.unpack_from(packet, offset)
        if flags & (_VERSION_MASK | _REJECTED_RESERVED0):
            counters["gre-version" if flags & _VERSION_MASK else "gre-reserved-bits"] += 1
            return None
        data = offset + _GRE_HEADER_LENGTHS[flags >> 12]
        if end < data:
            counters["gre-truncated"] += 1
            return None
        if flags & _FLAG_CHECKSUM and internet_checksum(packet[offset:end]) != 0:
            counters["gre-checksum"] += 1
            return None

        key = None
        if flags & _FLAG_KEY:
            key = _WORD.unpack_from(packet, offset + (8 if flags & _FLAG_CHECKSUM else 4))[0]
        peers = self._by_remote.get(remote)
        tunnel = None if peers is None else peers.get(key)
        if tunnel is None:
            self._count_unknown_tunnel(peers, key)
            return None

        if protocol_type == _TRANSPARENT_ETHERNET_BRIDGING:
            if not 14 <= end - data <= self.max_frame_size:
                counters["runt-frame" if end - data < 14 else "oversized-frame"] += 1
                return None
            frame = packet[data:end]
            if outer_tos & 3 == 3:
                frame = self._propagate_congestion(frame)
                if frame is None:
                    return None
            # The sequence state moves only for a frame that is otherwise
            # delivered, so a dropped packet cannot make later ones stale.
            receiver = tunnel.receiver
            if receiver is not None:
                if not flags & _FLAG_SEQUENCE:
                    # A tunnel that expects numbers takes none without
                    # them, as Linux's ip_tunnel_rcv does for its GRE
                    # devices (net/ipv4/ip_tunnel.c).
                    counters["sequence-missing"] += 1
                    return None
                verdict = receiver.check(_WORD.unpack_from(packet, data - 4)[0])
                if verdict is not _ACCEPT:
                    if verdict is not _RESYNCHRONIZED:
                        counters[_SEQUENCE_DROPS[verdict]] += 1
                        return None
                    counters["sequence-resynchronized"] += 1
            tunnel.frames_received += 1
            counters["frames-decapsulated"] += 1
            return tunnel.agg_id, frame
        if protocol_type == ProtocolType.KEEPALIVE_REPLY:
            self._keepalive_reply(tunnel, now)
            return None
        if protocol_type == ProtocolType.IPV4:
            self._reflect_keepalive(tunnel, packet, data, end)
            return None
        counters["unsupported-protocol"] += 1
        return None

    def _count_outer_drop(self, packet: bytes) -> None:
        """
        Count why the outer IPv4 header of a packet from a raw socket was
        rejected.
        """
        counters = self.counters
        header_length = (packet[0] & 0x0F) * 4
        total_length = _SHORT.unpack_from(packet, 2)[0]
        if packet[0] >> 4 != 4:
            counters["outer-not-ipv4"] += 1
        elif header_length < 20 or not header_length <= total_length <= len(packet):
            counters["outer-truncated"] += 1
        elif packet[9] != GRE_IP_PROTOCOL:
            counters["outer-not-gre"] += 1
        else:
            # The kernel reassembles fragments before a raw socket receives
            # them, so a fragment here was built by hand.
            counters["outer-fragment"] += 1

    def _count_unknown_tunnel(self, peers: dict | None, key: int | None) -> None:
        if peers is None:
            self.counters["unknown-remote"] += 1
        elif key is not None and key & RESERVED_KEY_BITS:
            self.counters["key-reserved-bits"] += 1
        else:
            self.counters["unknown-key"] += 1

    def _propagate_congestion(self, frame: bytes) -> bytes | None:
        """
        Apply RFC 6040 section 4.2 to a frame whose outer header is marked
        CE: an ECN-capable inner IPv4 packet is marked CE too, and a
        not-ECN-capable one is dropped. Other frames pass unchanged.
        """
        ip_offset = _ipv4_offset(frame)
        if ip_offset is None:
            return frame
        tos = frame[ip_offset + 1]
        if tos & 3 == 3:
            return frame
        if tos & 3 == 0:
            self.counters["ecn-not-ect-dropped"] += 1
            return None
        # Incremental checksum update of RFC 1624 equation 3 for the
        # first 16-bit word of the header.
        old_word = _SHORT.unpack_from(frame, ip_offset)[0]
        new_word = old_word | 3
        old_checksum = _SHORT.unpack_from(frame, ip_offset + 10)[0]
        total = (~old_checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        marked = bytearray(frame)
        marked[ip_offset + 1] = tos | 3
        _SHORT.pack_into(marked, ip_offset + 10, ~total & 0xFFFF)
        self.counters["ecn-congestion-marked"] += 1
        return bytes(marked)

    # Keepalives

    def poll(self, now: float) -> None:
        """
        Send the keepalives that are due at C{now} (through
        L{drain_packets}) and detect tunnels that went down (through
        L{drain_events}).
        """
        for tunnel in self._tunnels.values():
            keepalive = tunnel.keepalive
            if keepalive is None:
                continue
            due, event = keepalive.poll(now)
            if event is not None:
                if tunnel.receiver is not None:
                    tunnel.receiver.reset()
                self._queue(self._events, event)
            if due and self._queue(self._packets, self._keepalive_request(tunnel)):
                self.counters["keepalive-sent"] += 1

    def next_deadline(self) -> float | None:
        """
        Return when L{poll} must next be called, or C{None} when no tunnel
        has keepalives. A tunnel that has not sent its first keepalive is
        due at once, which this reports as 0.0.
        """
        deadline = None
        for tunnel in self._tunnels.values():
            keepalive = tunnel.keepalive
            if keepalive is None:
                continue
            due = 0.0 if keepalive.next_deadline is None else keepalive.next_deadline
            if deadline is None or due < deadline:
                deadline = due
        return deadline

    def _keepalive_request(self, tunnel: TunnelState) -> Outgoing:
        key = tunnel.key
        flags = GreFlags.KEY if key is not None else 0
        key_field = _WORD.pack(key) if key is not None else b""
        inner_gre = tunnel.keepalive_reply
        inner = OuterIPv4(tunnel.remote_int, self.local_address, GRE_IP_PROTOCOL, _KEEPALIVE_TTL)
        inner_packet = inner.header(_KEEPALIVE_TOS, 20 + len(inner_gre), 0, 0) + inner_gre
        gre = _BASE.pack(flags, ProtocolType.IPV4) + key_field + inner_packet
        if not self._raw:
            return Outgoing(tunnel.remote, (gre,), _KEEPALIVE_TOS, flow_source_port(b""))
        identification = self._identification
        self._identification = (identification + 1) & 0xFFFF
        packets = tunnel.outer.packets(
            (gre,), len(gre), _KEEPALIVE_TOS, identification, tunnel.path_mtu, True
        )
        return Outgoing(tunnel.remote, tuple(packets), _KEEPALIVE_TOS, 0)

    def _keepalive_reply(self, tunnel: TunnelState, now: float) -> None:
        self.counters["keepalive-reply"] += 1
        if tunnel.keepalive is None:
            return
        event = tunnel.keepalive.reply_received(now)
        if event is not None:
            if tunnel.receiver is not None:
                tunnel.receiver.reset()
            self._queue(self._events, event)

    def _reflect_keepalive(self, tunnel: TunnelState, packet: bytes, start: int, end: int) -> None:
        """
        Answer a keepalive request whose inner IPv4 packet is
        C{packet[start:end]}. Only a bare request is answered: an
        unfragmented IPv4 packet without options from this endpoint's
        address to the tunnel's remote, protocol 47, carrying exactly the
        tunnel's keepalive reply header. The reply is built here, so nothing
        of the request but its validity reaches the wire.
        """
        expected = tunnel.keepalive_reply
        length = IPV4_HEADER_LENGTH + len(expected)
        if (
            end - start != length
            or packet[start] != 0x45
            or packet[start + 9] != GRE_IP_PROTOCOL
            or _SHORT.unpack_from(packet, start + 2)[0] != length
            or _SHORT.unpack_from(packet, start + 6)[0] & _FRAGMENT_BITS
            or _ADDRESSES.unpack_from(packet, start + 12) != (self.local_address, tunnel.remote_int)
            or packet[start + IPV4_HEADER_LENGTH : end] != expected
        ):
            self.counters["keepalive-invalid"] += 1
            return

        if self._raw:
            identification = self._identification
            self._identification = (identification + 1) & 0xFFFF
            header = tunnel.outer.header(_KEEPALIVE_TOS, length, identification, _DONT_FRAGMENT)
            reply = Outgoing(tunnel.remote, (header + expected,), _KEEPALIVE_TOS, 0)
        else:
            reply = Outgoing(tunnel.remote, (expected,), _KEEPALIVE_TOS, 49152)
        if self._queue(self._packets, reply):
            self.counters["keepalive-reflected"] += 1

    # Output queues

    def _queue(self, queue: list, item: object) -> bool:
        if len(queue) >= _QUEUE_LIMIT:
            self.counters["queue-full"] += 1
            return False
        queue.append(item)
        return True

    @property
    def has_output(self) -> bool:
        """
        Whether any of the drain methods has something to return.
        """
        return bool(self._packets or self._frames or self._events)

    def drain_packets(self) -> list[Outgoing]:
        """
        Return and forget the control packets to send: keepalives and
        reflected keepalives.
        """
        packets, self._packets = self._packets, []
        return packets

    def drain_frames(self) -> list[tuple[int, bytes]]:
        """
        Return and forget the frames to hand to the bridge as if received
        from the given aggregation ID: ICMP "fragmentation needed" replies,
        addressed to the sender of the frame that did not fit.
        """
        frames, self._frames = self._frames, []
        return frames

    def drain_events(self) -> list[TunnelUp | TunnelDown]:
        """
        Return and forget the liveness events, oldest first.
        """
        events, self._events = self._events, []
        return events


def _ipv4_offset(frame: bytes) -> int | None:
    """
    Return the offset of the IPv4 header in an Ethernet frame, after up to
    four VLAN tags, or C{None} when the frame does not carry IPv4 with a
    complete fixed header.
    """
    length = len(frame)
    offset = 12
    ethertype = _SHORT.unpack_from(frame, 12)[0]
    tags = 0
    while ethertype in VLAN_TPIDS and tags < 4 and offset + 6 <= length:
        ethertype = _SHORT.unpack_from(frame, offset + 4)[0]
        offset += 4
        tags += 1
    offset += 2
    if ethertype != _ETHERTYPE_IPV4 or offset + 20 > length or frame[offset] >> 4 != 4:
        return None
    return offset


def _checksum_of_parts(header: bytes, payload: bytes) -> int:
    """
    Compute the Internet checksum of C{header + payload} without joining
    them. C{header} has an even length and a non-zero first word.
    """
    number = int.from_bytes(payload, "big")
    if len(payload) % 2:
        number <<= 8
    total = (int.from_bytes(header, "big") % 0xFFFF + number % 0xFFFF) % 0xFFFF
    # The header is not zero, so the one's complement sum is -0, not +0.
    return ~(total or 0xFFFF) & 0xFFFF
