"""
Guards on the per-frame work of L{roaming.ports.gre}: the socket calls a
GRE port makes for each frame it sends or receives, counted on memory
sockets.  They check what is done, not how long it takes, because the
datapath benchmarks measure time.
"""

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE, Ether
from twisted.internet.testing import MemoryReactorClock

from roaming.ports.gre import RawGrePort
from roaming.tunnel.endpoint import GreEndpoint as TunnelEngine

from .fakes import FakeSocket, MemorySocketSystem
from .frames import udp_frame

LOCAL = "127.0.0.1"
PEER = "127.0.0.2"
KEY = 0x0001_0203


class _CallCountingSocket(FakeSocket):
    """
    A memory socket that records the name of every method called on it
    after the port opened it.
    """

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.calls: list[str] = []

    def setsockopt(self, level, option, value) -> None:
        self.calls.append("setsockopt")
        super().setsockopt(level, option, value)

    def getsockopt(self, level, option, size=None):
        self.calls.append("getsockopt")
        return self.options.get((level, option), 0)

    def recvfrom(self, size):
        self.calls.append("recvfrom")
        return super().recvfrom(size)

    def recvmsg(self, size, ancillary_size=0):
        self.calls.append("recvmsg")
        return super().recvmsg(size, ancillary_size)

    def sendto(self, data, address) -> int:
        self.calls.append("sendto")
        return super().sendto(data, address)

    def sendmsg(self, buffers, ancillary=(), flags=0, address=None) -> int:
        self.calls.append("sendmsg")
        return super().sendmsg(buffers, ancillary, flags, address)


class _CallCountingSystem(MemorySocketSystem):
    def socket(self, family: int, type: int, proto: int = 0) -> _CallCountingSocket:
        sock = _CallCountingSocket(family, type, proto, 100 + len(self.sockets))
        self.sockets.append(sock)
        return sock


def _engine(**tunnel_options) -> TunnelEngine:
    engine = TunnelEngine(LOCAL)
    engine.add_tunnel(7, PEER, KEY, sequence=True, **tunnel_options)
    return engine


def _started_port(engine: TunnelEngine, *, budget: int = 64):
    """
    Return a started raw GRE port on C{engine}, its socket with the calls
    of opening it forgotten, and the list of frames it delivers.
    """
    system = _CallCountingSystem()
    port = RawGrePort(LOCAL, engine, budget=budget, system=system, reactor=MemoryReactorClock())
    received = []
    port.start_port(lambda agg_id, frame: received.append((agg_id, frame)))
    sock = system.sockets[0]
    sock.calls.clear()
    return port, sock, received


def test_one_sendto_per_frame():
    """
    Sending a frame that fits the path makes one C{sendto} and no other
    socket call: socket options are set once, when the port opens.
    """
    port, sock, _ = _started_port(_engine())
    frames = [udp_frame(bytes([n]) * 18) for n in range(5)]
    for frame in frames:
        port.send_frame(frame, 7)
    assert sock.calls == ["sendto"] * 5

    # scapy reads the key, the sequence numbers in order and the inner
    # frames back from what was sent.
    packets = [IP(data) for data, _, _ in sock.sent]
    assert [packet[GRE].key for packet in packets] == [KEY] * 5
    assert [packet[GRE].sequence_number for packet in packets] == [0, 1, 2, 3, 4]
    assert [bytes(packet[GRE].payload) for packet in packets] == frames
    assert port.counters.tx_frames == 5


def test_one_sendto_per_outer_fragment():
    """
    A frame without DF that is larger than the path is sent as outer
    fragments, one C{sendto} each and nothing else.
    """
    port, sock, _ = _started_port(_engine(path_mtu=576))
    port.send_frame(udp_frame(b"\x00" * 1000), 7)
    assert len(sock.sent) > 1
    assert sock.calls == ["sendto"] * len(sock.sent)
    assert port.counters.tx_frames == 1


@pytest.mark.parametrize("path_mtu", [1500, 576])
def test_sent_frame_leaves_no_engine_output(path_mtu):
    """
    A frame the engine encapsulates queues no keepalive, ICMP reply or
    event on it, whole or in outer fragments.  The port relies on this to
    look for engine output only when a frame is dropped.
    """
    engine = _engine(path_mtu=path_mtu)
    outgoing = engine.encapsulate(7, udp_frame(b"\x00" * 1000), 0.0)
    assert outgoing is not None
    assert len(outgoing.packets) == (1 if path_mtu == 1500 else 2)
    assert not engine.has_output


def test_dropped_frame_output_still_delivered():
    """
    The ICMP "fragmentation needed" reply to a DF frame that does not fit
    reaches the bridge during the send call, and no packet is sent.
    """
    port, sock, received = _started_port(_engine(path_mtu=576))
    big = bytes(
        Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
        / IP(src="10.1.0.1", dst="10.1.0.2", flags="DF")
        / (b"\x00" * 1000)
    )
    port.send_frame(big, 7)
    assert sock.calls == []
    [(agg_id, frame)] = received
    assert agg_id == 7
    assert (Ether(frame)[IP].payload.type, Ether(frame)[IP].payload.code) == (3, 4)


def _incoming(peer: TunnelEngine, frame: bytes):
    packet = peer.encapsulate(7, frame, 0.0).packets[0]
    return (packet, [], 0, (PEER, 0))


def test_one_wakeup_reads_the_queue_dry():
    """
    One readable event reads every queued packet with one C{recvfrom}
    each, plus the one that finds the socket empty, and sends nothing.
    """
    port, sock, received = _started_port(_engine())
    peer = TunnelEngine(PEER)
    peer.add_tunnel(7, LOCAL, KEY, sequence=True)
    frames = [udp_frame(bytes([n]) * 18) for n in range(10)]
    sock.incoming.extend(_incoming(peer, frame) for frame in frames)
    port.doRead()
    assert received == [(7, frame) for frame in frames]
    assert sock.calls == ["recvfrom"] * 11


def test_one_wakeup_stops_at_budget():
    """
    A wake-up reads at most C{budget} packets, so other ports get their
    turn.  The rest wait for the next wake-up.
    """
    port, sock, received = _started_port(_engine(), budget=4)
    peer = TunnelEngine(PEER)
    peer.add_tunnel(7, LOCAL, KEY, sequence=True)
    sock.incoming.extend(_incoming(peer, udp_frame(bytes([n]) * 18)) for n in range(6))
    port.doRead()
    assert sock.calls == ["recvfrom"] * 4
    assert len(received) == 4
    port.doRead()
    assert len(received) == 6
