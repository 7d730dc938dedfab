"""
Tests for L{roaming.ports.gre}: both transports, on memory sockets and on
real sockets in a network namespace, with packets decoded by scapy.
"""

import errno
import select
import socket
import struct
import time

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE, Ether
from twisted.internet.testing import MemoryReactorClock

from roaming.ports.gre import GRE_IN_UDP_PORT, RawGrePort, UdpGrePort
from roaming.ports.tunnels import GreTunnel, GreTunnelTable
from roaming.tunnel.endpoint import GreEndpoint as TunnelEngine
from roaming.tunnel.endpoint import Transport

from . import netns
from .fakes import MemorySocketSystem
from .frames import arp_request, udp_frame

LOCAL = "127.0.0.1"
PEER = "127.0.0.2"
STRANGER = "127.0.0.3"
KEY = 0x0001_0203


def _table() -> GreTunnelTable:
    table = GreTunnelTable(LOCAL)
    table.add_tunnel(GreTunnel(agg_id=7, remote=PEER, key=KEY))
    table.add_tunnel(GreTunnel(agg_id=9, remote=PEER, key=KEY + 1))
    return table


def _engine(transport: Transport, **tunnel_options) -> TunnelEngine:
    engine = TunnelEngine(LOCAL, transport=transport)
    engine.add_tunnel(7, PEER, KEY, sequence=True, **tunnel_options)
    engine.add_tunnel(9, PEER, KEY + 1, sequence=True, **tunnel_options)
    return engine


def _endpoint(kind: str, transport: Transport):
    return _engine(transport) if kind == "engine" else _table()


def _gre(frame: bytes, *, key: int = KEY, sequence: int = 0, version: int = 0) -> bytes:
    header = GRE(
        proto=0x6558,
        key_present=1,
        key=key,
        seqnum_present=1,
        sequence_number=sequence,
        version=version,
    )
    return bytes(header / Ether(frame))


class _Harness:
    """
    A GRE port and its peer.  C{inject} sends a GRE packet from an address
    to the port; C{written} returns C{(source, tos, gre_packet)} of the
    packets the peer received.
    """

    received: list
    port: RawGrePort | UdpGrePort

    def wait_readable(self, timeout: float = 2.0) -> None:
        pass

    @property
    def engine(self) -> bool:
        return isinstance(self.port.endpoint, TunnelEngine)

    def unknown_drops(self) -> int:
        """
        Return the packets dropped for an unknown remote or key.
        """
        if self.engine:
            counters = self.port.endpoint.counters
            return counters["unknown-remote"] + counters["unknown-key"]
        assert self.port.counters.rx_dropped == self.port.endpoint.counters.unknown_peer
        return self.port.endpoint.counters.unknown_peer

    def malformed_drops(self) -> dict[str, int]:
        """
        Return the malformed-packet counters that are not zero.
        """
        if self.engine:
            counters = self.port.endpoint.counters
            return {
                name: counters[name] for name in ("gre-version", "gre-truncated") if counters[name]
            }
        return dict(self.port.counters.decode_errors)


class _MemoryRaw(_Harness):
    def __init__(self, kind: str, budget: int) -> None:
        self.system = MemorySocketSystem()
        self.received = []
        self.clock = MemoryReactorClock()
        endpoint = _endpoint(kind, Transport.RAW_IPV4)
        self.port = RawGrePort(
            LOCAL, endpoint, budget=budget, reactor=self.clock, system=self.system
        )
        self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
        self.socket = self.system.sockets[0]

    def inject(self, gre_packet: bytes, source: str = PEER) -> None:
        packet = bytes(IP(src=source, dst=LOCAL, proto=47) / gre_packet)
        self.socket.incoming.append((packet, [], 0, (source, 0)))

    def written(self, count: int):
        result = []
        for data, address, _ in self.socket.sent[:count]:
            outer = IP(data)
            assert address == (outer.dst, 0)
            result.append((outer.src, outer.tos, bytes(outer.payload)))
        return result

    def close(self) -> None:
        self.port.stop_port()


class _MemoryUdp(_Harness):
    def __init__(self, kind: str, budget: int) -> None:
        self.system = MemorySocketSystem()
        self.received = []
        self.clock = MemoryReactorClock()
        endpoint = _endpoint(kind, Transport.GRE_IN_UDP)
        self.port = UdpGrePort(
            LOCAL, endpoint, budget=budget, reactor=self.clock, system=self.system
        )
        self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
        self.socket = self.system.sockets[0]

    def inject(self, gre_packet: bytes, source: str = PEER) -> None:
        self.socket.incoming.append((gre_packet, [], 0, (source, GRE_IN_UDP_PORT)))

    def written(self, count: int):
        result = []
        for data, address, ancillary in self.socket.sent[:count]:
            assert address == (PEER, GRE_IN_UDP_PORT)
            [(level, kind, value)] = ancillary
            assert (level, kind) == (socket.IPPROTO_IP, socket.IP_TOS)
            result.append((LOCAL, struct.unpack("@i", value)[0], data))
        return result

    def close(self) -> None:
        self.port.stop_port()


class _RealRaw(_Harness):
    def __init__(self, kind: str, namespace: netns.Namespace, budget: int) -> None:
        self.received = []
        endpoint = _endpoint(kind, Transport.RAW_IPV4)
        with netns.inside(namespace):
            self.port = RawGrePort(LOCAL, endpoint, budget=budget, reactor=MemoryReactorClock())
            self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
            self.peer = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
        self.peer.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.peer.bind((PEER, 0))
        self.peer.settimeout(2.0)

    def inject(self, gre_packet: bytes, source: str = PEER) -> None:
        packet = bytes(IP(src=source, dst=LOCAL, proto=47) / gre_packet)
        self.peer.sendto(packet, (LOCAL, 0))

    def wait_readable(self, timeout: float = 2.0) -> None:
        select.select([self.port.fileno()], [], [], timeout)

    def written(self, count: int):
        result = []
        for _ in range(count):
            try:
                data = self.peer.recv(65535)
            except TimeoutError:
                break
            outer = IP(data)
            result.append((outer.src, outer.tos, bytes(outer.payload)))
        return result

    def close(self) -> None:
        self.peer.close()
        self.port.stop_port()


class _RealUdp(_Harness):
    def __init__(self, kind: str, namespace: netns.Namespace, budget: int) -> None:
        self.received = []
        self.strangers = []
        self.namespace = namespace
        endpoint = _endpoint(kind, Transport.GRE_IN_UDP)
        with netns.inside(namespace):
            self.port = UdpGrePort(LOCAL, endpoint, budget=budget, reactor=MemoryReactorClock())
            self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
            self.peer = self._socket(PEER)

    def _socket(self, address: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        sock.bind((address, GRE_IN_UDP_PORT))
        sock.settimeout(2.0)
        return sock

    def inject(self, gre_packet: bytes, source: str = PEER) -> None:
        if source == PEER:
            sender = self.peer
        else:
            with netns.inside(self.namespace):
                sender = self._socket(source)
            self.strangers.append(sender)
        sender.sendto(gre_packet, (LOCAL, GRE_IN_UDP_PORT))

    def wait_readable(self, timeout: float = 2.0) -> None:
        select.select([self.port.fileno()], [], [], timeout)

    def written(self, count: int):
        result = []
        for _ in range(count):
            try:
                data, ancillary, _, address = self.peer.recvmsg(65535, 64)
            except TimeoutError:
                break
            tos = [value[0] for level, kind, value in ancillary if kind == socket.IP_TOS]
            result.append((address[0], tos[0], data))
        return result

    def close(self) -> None:
        for sock in [self.peer, *self.strangers]:
            sock.close()
        self.port.stop_port()


class GrePortContract:
    def make(self, budget: int = 64) -> _Harness:
        raise NotImplementedError

    def test_members_are_tunnels(self):
        """
        The port is an aggregation port whose members are its tunnels.
        """
        harness = self.make()
        assert harness.port.aggregation
        assert harness.port.member_ids() == [7, 9]

    def test_frame_received_with_tunnel_id(self):
        """
        A GRE packet from a known tunnel yields its frame and the tunnel's
        aggregation ID; the key selects the tunnel.
        """
        harness = self.make()
        first, second = udp_frame(b"one"), arp_request()
        harness.inject(_gre(first))
        harness.inject(_gre(second, key=KEY + 1))
        harness.wait_readable()
        harness.port.doRead()
        assert harness.received == [(7, first), (9, second)]
        assert harness.port.counters.rx_frames == 2

    def test_unknown_peer_dropped(self):
        """
        A packet from an address without a tunnel is dropped and counted.
        """
        harness = self.make()
        harness.inject(_gre(udp_frame()), source=STRANGER)
        harness.inject(_gre(udp_frame(), key=KEY + 5))
        for _ in range(10):
            harness.wait_readable(timeout=0.2)
            harness.port.doRead()
            if harness.unknown_drops() == 2:
                break
        assert harness.received == []
        assert harness.unknown_drops() == 2

    def test_malformed_counted_and_skipped(self):
        """
        A malformed GRE packet is counted under "gre" and the packet after
        it is delivered in the same read event.
        """
        harness = self.make()
        good = udp_frame(b"after")
        harness.inject(_gre(udp_frame(), version=1))
        harness.inject(b"\x30\x00")
        harness.inject(_gre(good))
        harness.wait_readable()
        harness.port.doRead()
        assert harness.received == [(7, good)]
        if harness.engine:
            assert harness.malformed_drops() == {"gre-version": 1, "gre-truncated": 1}
        else:
            assert harness.malformed_drops() == {"gre": 2}
            assert harness.port.counters.rx_dropped == 2

    def test_runt_frames_counted_and_skipped(self):
        """
        GRE packets carrying less than an Ethernet header are counted and
        dropped, not handed to the bridge.
        """
        harness = self.make()
        good = udp_frame(b"after")
        for number, runt in enumerate((b"", b"12345", bytes(13))):
            gre = GRE(proto=0x6558, key_present=1, key=KEY, seqnum_present=1)
            gre.sequence_number = number
            harness.inject(bytes(gre / runt))
        harness.inject(_gre(good, sequence=3))
        harness.wait_readable()
        harness.port.doRead()
        assert harness.received == [(7, good)]
        assert harness.port.counters.rx_frames == 1
        if harness.engine:
            assert harness.port.endpoint.counters["runt-frame"] == 3
        else:
            assert harness.port.counters.decode_errors == {"gre": 3}
            assert harness.port.counters.rx_dropped == 3

    def test_send_into_tunnel(self):
        """
        A frame sent to a member leaves as GRE to the tunnel's remote with
        its key, sequence numbers from 0 and the inner TOS outside.
        """
        harness = self.make()
        frames = [udp_frame(b"a", tos=0xB8), udp_frame(b"b", tos=0x20)]
        for frame in frames:
            harness.port.send_frame(frame, 7)
        written = harness.written(2)
        assert [source for source, _, _ in written] == [LOCAL, LOCAL]
        assert [tos for _, tos, _ in written] == [0xB8, 0x20]
        decoded = [GRE(packet) for _, _, packet in written]
        assert [packet.key for packet in decoded] == [KEY, KEY]
        assert [packet.sequence_number for packet in decoded] == [0, 1]
        assert [packet.proto for packet in decoded] == [0x6558, 0x6558]
        assert [bytes(packet.payload) for packet in decoded] == frames
        assert harness.port.counters.tx_frames == 2

    def test_send_to_unknown_member(self):
        """
        A frame for an aggregation ID without a tunnel is counted as an
        error and not sent.
        """
        harness = self.make()
        harness.port.send_frame(udp_frame(), 8)
        if harness.engine:
            assert harness.port.counters.tx_dropped == 1
            assert harness.port.endpoint.counters["unknown-tunnel"] == 1
        else:
            assert harness.port.counters.tx_errors == 1
        assert harness.port.counters.tx_frames == 0

    def test_read_budget(self):
        """
        One read event takes at most C{budget} packets.
        """
        harness = self.make(budget=2)
        frames = [udp_frame(bytes([i])) for i in range(3)]
        for sequence, frame in enumerate(frames):
            harness.inject(_gre(frame, sequence=sequence))
        harness.wait_readable()
        harness.port.doRead()
        assert [frame for _, frame in harness.received] == frames[:2]
        harness.port.doRead()
        assert [frame for _, frame in harness.received] == frames


class _MemoryContract(GrePortContract):
    harness_class: type
    endpoint_kind: str

    @pytest.fixture(autouse=True)
    def _ports(self):
        self._opened = []
        yield
        for harness in self._opened:
            harness.close()

    def make(self, budget: int = 64):
        harness = self.harness_class(self.endpoint_kind, budget)
        self._opened.append(harness)
        return harness

    def test_read_error_keeps_reader(self):
        """
        An OS error on read (an ICMP error queued on the socket) is counted
        and the next packet is read in the same event.
        """
        harness = self.make()
        harness.socket.incoming.append(OSError(errno.ECONNREFUSED, "Connection refused"))
        frame = udp_frame()
        harness.inject(_gre(frame))
        harness.port.doRead()
        assert harness.port.counters.rx_errors == 1
        assert harness.received == [(7, frame)]

    def test_send_queue_full(self):
        """
        ENOBUFS and EAGAIN on send are drops.
        """
        harness = self.make()
        harness.socket.send_error = OSError(errno.ENOBUFS, "No buffer space available")
        harness.port.send_frame(udp_frame(), 7)
        harness.socket.send_error = OSError(errno.EAGAIN, "Resource temporarily unavailable")
        harness.port.send_frame(udp_frame(), 7)
        assert harness.port.counters.tx_dropped == 2
        assert harness.port.counters.tx_errors == 0


class TestMemoryRawGre(_MemoryContract):
    harness_class = _MemoryRaw
    endpoint_kind = "table"

    def test_socket_options(self):
        """
        The raw socket is unconnected, protocol 47, builds its own headers
        and is bound to the local address.
        """
        harness = self.make()
        sock = harness.socket
        assert (sock.family, sock.type, sock.proto) == (
            socket.AF_INET,
            socket.SOCK_RAW,
            socket.IPPROTO_GRE,
        )
        assert not sock.blocking
        assert sock.options[(socket.IPPROTO_IP, socket.IP_HDRINCL)] == 1
        assert sock.bound == (LOCAL, 0)
        assert not hasattr(sock, "connected_to")

    def test_malformed_ipv4_counted(self):
        """
        A packet that is not IPv4 protocol 47 is counted under "ipv4".
        """
        harness = self.make()
        harness.socket.incoming.append((b"\x45\x00", [], 0, (PEER, 0)))
        harness.port.doRead()
        assert harness.port.counters.decode_errors == {"ipv4": 1}


class TestMemoryRawGreEngine(_MemoryContract):
    harness_class = _MemoryRaw
    endpoint_kind = "engine"


class TestMemoryUdpGre(_MemoryContract):
    harness_class = _MemoryUdp
    endpoint_kind = "table"

    def test_socket_options(self):
        """
        The UDP socket is bound to the local address and port 4754.
        """
        harness = self.make()
        sock = harness.socket
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_DGRAM)
        assert sock.bound == (LOCAL, GRE_IN_UDP_PORT)

    def test_kernel_fragments_outer_datagrams(self):
        """
        Path MTU discovery is off (IP_MTU_DISCOVER = IP_PMTUDISC_DONT from
        linux/in.h), so the kernel fragments a datagram larger than the
        path instead of failing the send.
        """
        harness = self.make()
        assert harness.socket.options[(socket.IPPROTO_IP, 10)] == 0


class TestMemoryUdpGreEngine(_MemoryContract):
    harness_class = _MemoryUdp
    endpoint_kind = "engine"


class _RefusingForce(MemorySocketSystem):
    """
    Memory sockets that reject C{SO_RCVBUFFORCE}, as the kernel does for a
    process without C{CAP_NET_ADMIN}.
    """

    def socket(self, *args):
        sock = super().socket(*args)
        plain_setsockopt = sock.setsockopt

        def setsockopt(level, option, value):
            if (level, option) == (socket.SOL_SOCKET, 33):
                raise PermissionError(errno.EPERM, "Operation not permitted")
            plain_setsockopt(level, option, value)

        sock.setsockopt = setsockopt
        return sock


@pytest.mark.parametrize("port_class", [RawGrePort, UdpGrePort])
def test_receive_buffer_forced(port_class):
    """
    The receive buffer is set with SO_RCVBUFFORCE (33 in
    asm-generic/socket.h), which may exceed net.core.rmem_max.
    """
    system = MemorySocketSystem()
    port = port_class(
        LOCAL, _table(), receive_buffer=1 << 20, reactor=MemoryReactorClock(), system=system
    )
    port.start_port(lambda agg_id, frame: None)
    options = system.sockets[0].options
    assert options[(socket.SOL_SOCKET, 33)] == 1 << 20
    assert (socket.SOL_SOCKET, socket.SO_RCVBUF) not in options
    port.stop_port()


@pytest.mark.parametrize("port_class", [RawGrePort, UdpGrePort])
def test_receive_buffer_fallback(port_class):
    """
    Without the privilege for SO_RCVBUFFORCE, the port falls back to SO_RCVBUF.
    """
    system = _RefusingForce()
    port = port_class(
        LOCAL, _table(), receive_buffer=1 << 20, reactor=MemoryReactorClock(), system=system
    )
    port.start_port(lambda agg_id, frame: None)
    assert system.sockets[0].options[(socket.SOL_SOCKET, socket.SO_RCVBUF)] == 1 << 20
    port.stop_port()


class TestTunnelEngine:
    """
    What a GRE port does for the tunnel engine beyond moving frames.
    """

    def _port(self, engine: TunnelEngine, **options):
        clock = MemoryReactorClock()
        system = MemorySocketSystem()
        received = []
        port = RawGrePort(LOCAL, engine, reactor=clock, system=system, **options)
        port.start_port(lambda agg_id, frame: received.append((agg_id, frame)))
        return port, clock, system.sockets[0], received

    def test_ignored_remote_skips_engine(self):
        """
        A packet from a remote that C{ignore_remote} names is dropped before
        the engine, which counts nothing for it; other packets go through.
        """
        engine = _engine(Transport.RAW_IPV4)
        port, _, sock, received = self._port(
            engine, ignore_remote=lambda remote: remote == STRANGER
        )
        frame = udp_frame()
        for source in (STRANGER, PEER):
            packet = bytes(IP(src=source, dst=LOCAL, proto=47) / _gre(frame, sequence=1))
            sock.incoming.append((packet, [], 0, (source, 0)))
        port.doRead()
        assert received == [(7, frame)]
        assert port.ignored == 1
        assert engine.counters["unknown-remote"] == 0
        assert port.counters.rx_frames == 1

    def test_unignored_stranger_counted_by_engine(self):
        """
        Without a filter, the engine counts a stranger's packet as
        "unknown-remote".
        """
        engine = _engine(Transport.RAW_IPV4)
        port, _, sock, received = self._port(engine)
        packet = bytes(IP(src=STRANGER, dst=LOCAL, proto=47) / _gre(udp_frame()))
        sock.incoming.append((packet, [], 0, (STRANGER, 0)))
        port.doRead()
        assert received == []
        assert port.ignored == 0
        assert engine.counters["unknown-remote"] == 1

    def test_arm_sends_first_keepalive(self):
        """
        A tunnel added to a running port sends its first keepalive when the
        port is armed, not at the next idle poll.
        """
        engine = TunnelEngine(LOCAL)
        port, clock, sock, _ = self._port(engine)
        engine.add_tunnel(7, PEER, KEY, keepalive_period=5.0)
        port.arm()
        clock.advance(0)
        assert len(sock.sent) == 1
        assert IP(sock.sent[0][0]).dst == PEER
        assert len(clock.getDelayedCalls()) == 1
        port.stop_port()
        assert not clock.getDelayedCalls()

    def test_arm_before_start_schedules_nothing(self):
        """
        Arming a port that is not started leaves the reactor alone.
        """
        engine = TunnelEngine(LOCAL)
        engine.add_tunnel(7, PEER, KEY, keepalive_period=5.0)
        clock = MemoryReactorClock()
        port = RawGrePort(LOCAL, engine, reactor=clock, system=MemorySocketSystem())
        port.arm()
        assert not clock.getDelayedCalls()

    def test_tunnel_event_callback_argument(self):
        """
        The C{on_tunnel_event} argument receives the engine's events.
        """
        engine = TunnelEngine(LOCAL)
        engine.add_tunnel(7, PEER, KEY, keepalive_period=1.0, keepalive_misses=1)
        events = []
        _port, clock, _, _ = self._port(engine, on_tunnel_event=events.append)
        for _ in range(3):
            clock.advance(1.0)
        assert [type(event).__name__ for event in events] == ["TunnelDown"]

    def test_send_after_stop_dropped(self):
        """
        A frame sent to a stopped port is counted as dropped.
        """
        port, _, sock, _ = self._port(_engine(Transport.RAW_IPV4))
        port.stop_port()
        port.send_frame(udp_frame(), 7)
        assert sock.sent == []
        assert port.counters.tx_dropped == 1

    def test_udp_port_sends_to_its_port(self):
        """
        A GRE-in-UDP port bound to another port than 4754 (an SC's tunnels
        to other SCs) sends to that port on the peer too.
        """
        system = MemorySocketSystem()
        port = UdpGrePort(
            LOCAL,
            _engine(Transport.GRE_IN_UDP),
            port=GRE_IN_UDP_PORT + 1,
            reactor=MemoryReactorClock(),
            system=system,
        )
        port.start_port(lambda agg_id, frame: None)
        frame = udp_frame()
        port.send_frame(frame, 7)
        sock = system.sockets[0]
        assert sock.bound == (LOCAL, GRE_IN_UDP_PORT + 1)
        ((payload, address, _),) = sock.sent
        assert address == (PEER, GRE_IN_UDP_PORT + 1)
        assert bytes(GRE(payload).payload) == frame

    def test_transport_must_match(self):
        """
        A port rejects an engine built for the other transport.
        """
        with pytest.raises(ValueError, match="gre-in-udp"):
            RawGrePort(LOCAL, _engine(Transport.GRE_IN_UDP), reactor=MemoryReactorClock())
        with pytest.raises(ValueError, match="raw-ipv4"):
            UdpGrePort(LOCAL, _engine(Transport.RAW_IPV4), reactor=MemoryReactorClock())

    def test_keepalives_sent_on_schedule(self):
        """
        Keepalives go out when the port starts and then every period, and
        a tunnel whose keepalives stay unanswered raises a down event.
        """
        engine = TunnelEngine(LOCAL)
        engine.add_tunnel(7, PEER, KEY, keepalive_period=2.0, keepalive_misses=2)
        port, clock, sock, _ = self._port(engine)
        events = []
        port.on_tunnel_event = events.append
        assert len(sock.sent) == 1
        keepalive = IP(sock.sent[0][0])
        assert keepalive.dst == PEER
        assert GRE(bytes(keepalive.payload)).key == KEY
        for _ in range(6):
            clock.advance(1.0)
        assert len(sock.sent) == 4
        assert [type(event).__name__ for event in events] == ["TunnelDown"]
        port.stop_port()
        assert not clock.getDelayedCalls()

    def test_too_big_answered_with_icmp(self):
        """
        An IPv4 frame with DF that does not fit the path is not sent.  The
        ICMP "fragmentation needed" reply goes to the bridge as if it came
        from the tunnel.
        """
        engine = TunnelEngine(LOCAL)
        engine.add_tunnel(7, PEER, KEY, path_mtu=576)
        port, _, sock, received = self._port(engine)
        big = bytes(
            Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
            / IP(src="10.1.0.1", dst="10.1.0.2", flags="DF")
            / (b"\x00" * 1000)
        )
        port.send_frame(big, 7)
        assert sock.sent == []
        assert port.counters.tx_dropped == 1
        [(agg_id, frame)] = received
        assert agg_id == 7
        icmp = Ether(frame)[IP].payload
        assert (icmp.type, icmp.code) == (3, 4)

    def test_fragmented_outer_sent_whole(self):
        """
        A frame without DF that does not fit leaves as several outer
        fragments, counted as one frame.
        """
        engine = TunnelEngine(LOCAL)
        engine.add_tunnel(7, PEER, KEY, path_mtu=576)
        port, _, sock, _ = self._port(engine)
        port.send_frame(udp_frame(b"x" * 1000), 7)
        assert len(sock.sent) == 2
        assert port.counters.tx_frames == 1
        assert port.counters.tx_bytes == sum(len(data) for data, _, _ in sock.sent)


class _RealContract(GrePortContract):
    harness_class: type
    endpoint_kind: str

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _class_namespace(cls):
        # The sockets of each test are closed after it, so the tests of a
        # class can share one namespace.
        with netns.namespaces("gre") as (namespace,):
            cls.namespace = namespace
            yield

    @pytest.fixture(autouse=True)
    def _ports(self):
        self._opened = []
        try:
            yield
        finally:
            for harness in self._opened:
                harness.close()

    def make(self, budget: int = 64):
        harness = self.harness_class(self.endpoint_kind, self.namespace, budget)
        self._opened.append(harness)
        return harness


_real = [
    pytest.mark.netns,
    pytest.mark.skipif(not netns.CAN_USE_NETNS, reason="needs root, /dev/net/tun and iproute2"),
]


@_real[0]
@_real[1]
class TestRealRawGre(_RealContract):
    harness_class = _RealRaw
    endpoint_kind = "table"


@_real[0]
@_real[1]
class TestRealRawGreEngine(_RealContract):
    harness_class = _RealRaw
    endpoint_kind = "engine"


@_real[0]
@_real[1]
class TestRealUdpGre(_RealContract):
    harness_class = _RealUdp
    endpoint_kind = "table"


@_real[0]
@_real[1]
class TestRealUdpGreEngine(_RealContract):
    harness_class = _RealUdp
    endpoint_kind = "engine"


@_real[0]
@_real[1]
def _count_protocol_unreachable(sock, *, expected, timeout):
    """
    Read ICMP messages from the raw socket C{sock} until C{expected}
    protocol-unreachable messages (RFC 792 type 3, code 2) arrived or
    C{timeout} seconds passed, and return how many arrived.
    """
    deadline = time.monotonic() + timeout
    seen = 0
    # Each loop reads one message or waits, so 100 rounds bound the loop
    # even when unrelated ICMP traffic keeps arriving.
    for _ in range(100):
        remaining = deadline - time.monotonic()
        if seen >= expected or remaining <= 0:
            break
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            break
        packet = IP(sock.recv(65535))
        if packet.proto == 1 and bytes(packet.payload)[:2] == b"\x03\x02":
            seen += 1
    return seen


@_real[0]
@_real[1]
class TestRawSocketUnreachable:
    """
    The trap of connected raw sockets, checked on the real kernel: ICMP
    protocol-unreachable from a peer turns into a socket error only when
    the socket is connected, so the unconnected port reads on.
    """

    @pytest.fixture(autouse=True)
    def _namespace(self):
        with netns.namespaces("icmp") as (namespace,):
            self.namespace = namespace
            yield

    def _raw_socket(self) -> socket.socket:
        with netns.inside(self.namespace):
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        return sock

    def test_connected_socket_gets_error(self):
        """
        A connected raw socket gets ENOPROTOOPT ("Protocol not available",
        from ICMP protocol unreachable) after sending to an address with no
        GRE receiver, which is what stops Twisted's reader.
        """
        sock = self._raw_socket()
        try:
            sock.bind((LOCAL, 0))
            sock.connect((STRANGER, 0))
            sock.setblocking(False)
            packet = bytes(IP(src=LOCAL, dst=STRANGER, proto=47) / _gre(udp_frame()))
            sock.send(packet)
            select.select([sock], [], [], 2.0)
            with pytest.raises(OSError) as raised:
                sock.recv(65535)
            assert raised.value.errno == errno.ENOPROTOOPT
        finally:
            sock.close()

    def test_port_reads_on_after_unreachable(self):
        """
        The port sends into a tunnel whose remote has no GRE receiver, gets
        no error for the ICMP replies, and still delivers the next packet
        from a known tunnel.
        """
        engine = TunnelEngine(LOCAL)
        engine.add_tunnel(7, PEER, KEY)
        engine.add_tunnel(8, STRANGER, KEY)
        received = []
        with netns.inside(self.namespace):
            port = RawGrePort(LOCAL, engine, reactor=MemoryReactorClock())
            port.start_port(lambda agg_id, frame: received.append((agg_id, frame)))
        peer = self._raw_socket()
        with netns.inside(self.namespace):
            icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        try:
            peer.bind((PEER, 0))
            for _ in range(5):
                port.send_frame(udp_frame(), 8)
            # The error path only matters once the kernel has answered every
            # packet, so wait until the namespace has seen all five replies.
            assert _count_protocol_unreachable(icmp, expected=5, timeout=5.0) == 5
            port.doRead()
            frame = udp_frame(b"still reading")
            peer.sendto(bytes(IP(src=PEER, dst=LOCAL, proto=47) / _gre(frame)), (LOCAL, 0))
            select.select([port.fileno()], [], [], 2.0)
            port.doRead()
        finally:
            icmp.close()
            peer.close()
            port.stop_port()
        assert port.counters.tx_frames == 5
        assert port.counters.rx_errors == 0
        assert received == [(7, frame)]


@_real[0]
@_real[1]
def test_raw_ports_on_one_address_filter_each_other():
    """
    Two raw GRE sockets bound to one address both receive every GRE
    packet (raw(7)). With C{ignore_remote} naming the other port's peers,
    each port delivers only its own peer's frame and its engine counts no
    unknown remote.
    """
    first_engine = TunnelEngine(LOCAL)
    first_engine.add_tunnel(7, PEER, KEY)
    second_engine = TunnelEngine(LOCAL)
    second_engine.add_tunnel(8, STRANGER, KEY)
    received = {"first": [], "second": []}
    with netns.namespaces("grefilter") as (namespace,):
        first = RawGrePort(
            LOCAL,
            first_engine,
            ignore_remote=lambda remote: second_engine.lookup(remote, KEY) is not None,
            reactor=MemoryReactorClock(),
        )
        second = RawGrePort(
            LOCAL,
            second_engine,
            ignore_remote=lambda remote: first_engine.lookup(remote, KEY) is not None,
            reactor=MemoryReactorClock(),
        )
        sender = None
        try:
            # The ports open their sockets when started, in this namespace.
            with netns.inside(namespace):
                first.start_port(lambda agg_id, frame: received["first"].append((agg_id, frame)))
                second.start_port(lambda agg_id, frame: received["second"].append((agg_id, frame)))
                sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            from_peer = udp_frame(b"from peer")
            from_stranger = udp_frame(b"from stranger")
            for source, frame in ((PEER, from_peer), (STRANGER, from_stranger)):
                header = IP(src=source, dst=LOCAL, proto=47)
                sender.sendto(bytes(header / _gre(frame)), (LOCAL, 0))

            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and first.ignored + second.ignored < 2:
                select.select([first.fileno(), second.fileno()], [], [], 0.1)
                first.doRead()
                second.doRead()
        finally:
            if sender is not None:
                sender.close()
            first.stop_port()
            second.stop_port()

    assert received["first"] == [(7, from_peer)]
    assert received["second"] == [(8, from_stranger)]
    assert first.ignored == 1
    assert second.ignored == 1
    assert first_engine.counters["unknown-remote"] == 0
    assert second_engine.counters["unknown-remote"] == 0
