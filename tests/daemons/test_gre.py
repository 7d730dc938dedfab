# -*- test-case-name: tests.daemons.test_gre -*-
"""
Tests for L{roaming.tap.gre.EngineGrePort} on memory sockets, with scapy as
the independent decoder and encoder of the packets.
"""

import socket

from scapy.layers.inet import GRE, IP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from twisted.internet.testing import MemoryReactorClock

from roaming.tap.gre import EngineGrePort
from roaming.tunnel import GreEndpoint, Transport
from tests.ports.fakes import MemorySocketSystem

LOCAL = "10.1.0.11"
REMOTE = "10.1.0.2"
STATION = "02:aa:00:00:00:01"
HOST = "02:bb:00:00:00:02"


def inner_frame(size=60):
    """
    Build an Ethernet frame with an IPv4 payload (DF clear) of C{size} bytes.
    """
    frame = Ether(src=STATION, dst=HOST) / IP(src="10.2.0.50", dst="10.1.0.10", flags=0)
    raw = bytes(frame)
    return raw + bytes(size - len(raw))


class Harness:
    """
    An engine port with one tunnel (member 7) to L{REMOTE}, started on
    memory sockets and a memory reactor, collecting delivered frames.
    """

    def __init__(self, transport=Transport.RAW_IPV4, **tunnel):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1000)
        self.system = MemorySocketSystem()
        self.engine = GreEndpoint(LOCAL, transport=transport)
        self.engine.add_tunnel(7, REMOTE, 0, **tunnel)
        self.events = []
        self.port = EngineGrePort(
            LOCAL,
            self.engine,
            udp_port=4754,
            on_link_event=self.events.append,
            reactor=self.reactor,
            system=self.system,
        )
        self.delivered = []
        self.port.start_port(lambda agg_id, frame: self.delivered.append((agg_id, frame)))
        (self.socket,) = self.system.sockets

    def sent(self):
        packets = list(self.socket.sent)
        self.socket.sent.clear()
        return packets


def test_raw_socket_options():
    harness = Harness()
    sock = harness.socket
    assert (sock.family, sock.type, sock.proto) == (
        socket.AF_INET,
        socket.SOCK_RAW,
        socket.IPPROTO_GRE,
    )
    assert sock.options[(socket.IPPROTO_IP, socket.IP_HDRINCL)] == 1
    assert sock.bound == (LOCAL, 0)
    assert harness.port.member_ids() == [7]


def test_send_frame_encapsulates():
    harness = Harness()
    frame = inner_frame()
    harness.port.send_frame(frame, 7)
    ((packet, address, _),) = harness.sent()
    assert address == (REMOTE, 0)
    outer = IP(packet)
    assert (outer.src, outer.dst, outer.proto) == (LOCAL, REMOTE, 47)
    gre = outer[GRE]
    assert gre.proto == 0x6558
    assert gre.key_present == 1
    assert gre.key == 0
    assert bytes(gre.payload) == frame
    assert harness.port.counters.tx_frames == 1


def test_oversized_frame_fragmented():
    harness = Harness(path_mtu=600)
    frame = inner_frame(1000)
    harness.port.send_frame(frame, 7)
    fragments = [IP(packet) for packet, _, _ in harness.sent()]
    assert len(fragments) == 2
    assert fragments[0].flags.MF
    assert all(len(bytes(fragment)) <= 600 for fragment in fragments)
    assert harness.engine.counters["outer-fragmented"] == 1


def test_unknown_member_dropped():
    harness = Harness()
    harness.port.send_frame(inner_frame(), 99)
    assert harness.sent() == []
    assert harness.port.counters.tx_dropped == 1


def test_received_packet_delivered():
    harness = Harness()
    frame = inner_frame()
    packet = bytes(IP(src=REMOTE, dst=LOCAL) / GRE(key_present=1, key=0, proto=0x6558) / Raw(frame))
    harness.socket.incoming.append((packet, [], 0, (REMOTE, 0)))
    harness.port.doRead()
    assert harness.delivered == [(7, frame)]


def test_unknown_remote_dropped():
    harness = Harness()
    frame = inner_frame()
    gre = GRE(key_present=1, key=0, proto=0x6558)
    packet = bytes(IP(src="10.9.9.9", dst=LOCAL) / gre / Raw(frame))
    harness.socket.incoming.append((packet, [], 0, ("10.9.9.9", 0)))
    harness.port.doRead()
    assert harness.delivered == []
    assert harness.port.counters.rx_dropped == 1


def test_keepalives_on_timer():
    harness = Harness(keepalive_period=1.0, keepalive_misses=2)
    harness.reactor.advance(0)
    ((packet, address, _),) = harness.sent()
    assert address == (REMOTE, 0)
    outer = IP(packet)
    inner = outer[GRE].payload
    assert isinstance(inner, IP)
    assert (inner.src, inner.dst) == (REMOTE, LOCAL)
    harness.reactor.advance(1.0)
    assert len(harness.sent()) == 1
    harness.reactor.advance(1.0)
    harness.reactor.advance(1.0)
    assert [type(event).__name__ for event in harness.events] == ["TunnelDown"]


def test_stop_cancels_timer():
    harness = Harness(keepalive_period=1.0)
    harness.port.stop_port()
    assert harness.reactor.getDelayedCalls() == []
    assert harness.socket.closed


def test_udp_transport_sends_to_port():
    harness = Harness(transport=Transport.GRE_IN_UDP)
    sock = harness.socket
    assert sock.type == socket.SOCK_DGRAM
    assert sock.bound == (LOCAL, 4754)
    frame = inner_frame()
    harness.port.send_frame(frame, 7)
    ((payload, address, ancillary),) = harness.sent()
    assert address == (REMOTE, 4754)
    assert ancillary[0][:2] == (socket.IPPROTO_IP, socket.IP_TOS)
    gre = GRE(payload)
    assert gre.proto == 0x6558
    assert bytes(gre.payload) == frame
