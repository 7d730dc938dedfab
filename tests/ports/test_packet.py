"""
Tests for L{roaming.ports.packet}: the same cases on a memory socket that
mimics the kernel and on a real veth pair in a network namespace.
"""

import errno
import select
import socket
import struct

import pytest
from twisted.internet.testing import MemoryReactor

from roaming.ports.packet import (
    ETH_P_ALL,
    PACKET_AUXDATA,
    PACKET_OUTGOING,
    SOL_PACKET,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    PacketSocketPort,
    restore_vlan_tag,
)

from . import netns
from .fakes import FakeSocket, MemorySocketSystem
from .frames import arp_request, tagged_udp, udp_frame

_PACKET_HOST = 0
# struct tpacket_auxdata from linux/if_packet.h, host byte order.
_AUXDATA = struct.Struct("=IIIHHHH")


def _kernel_view(frame: bytes):
    """
    Return C{(frame, ancillary)} as the Linux receive path hands a frame to
    a packet socket: the outer 802.1Q or 802.1ad tag moved into auxdata.
    """
    tpid = int.from_bytes(frame[12:14], "big")
    if tpid not in (0x8100, 0x88A8):
        return frame, [
            (SOL_PACKET, PACKET_AUXDATA, _AUXDATA.pack(0, len(frame), len(frame), 0, 0, 0, 0))
        ]
    tci = int.from_bytes(frame[14:16], "big")
    status = TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
    stripped = frame[:12] + frame[16:]
    auxdata = _AUXDATA.pack(status, len(stripped), len(stripped), 0, 0, tci, tpid)
    return stripped, [(SOL_PACKET, PACKET_AUXDATA, auxdata)]


class _EchoingSocket(FakeSocket):
    """
    A packet socket that, like the kernel, also delivers the frames it sends
    to itself marked C{PACKET_OUTGOING}.
    """

    def send(self, data: bytes) -> int:
        sent = super().send(data)
        self.incoming.append((data, [], 0, ("v0", ETH_P_ALL, PACKET_OUTGOING, 1, b"\x02" * 6)))
        return sent


class _EchoingSystem(MemorySocketSystem):
    def socket(self, family, type, proto=0):
        sock = _EchoingSocket(family, type, proto, 100 + len(self.sockets))
        self.sockets.append(sock)
        return sock


class _MemoryPacketPort:
    def __init__(self, budget: int) -> None:
        self.system = _EchoingSystem({"v0": 4})
        self.received: list[tuple[int | None, bytes]] = []
        self.port = PacketSocketPort(
            "v0", budget=budget, reactor=MemoryReactor(), system=self.system
        )
        self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
        self.socket = self.system.sockets[0]

    def inject(self, frame: bytes) -> None:
        data, ancillary = _kernel_view(frame)
        self.socket.incoming.append((data, ancillary, 0, ("v0", ETH_P_ALL, _PACKET_HOST, 1, b"")))

    def wait_readable(self) -> None:
        pass

    def written(self, count: int) -> list[bytes]:
        return [data for data, _, _ in self.socket.sent][:count]

    def close(self) -> None:
        self.port.stop_port()


class _RealPacketPort:
    """
    A packet-socket port on C{v0} of a veth pair; the wire is a packet
    socket on the peer C{v1}.
    """

    def __init__(self, namespace: netns.Namespace, budget: int) -> None:
        self.namespace = namespace
        namespace.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
        namespace.ip("link", "set", "v0", "up")
        namespace.ip("link", "set", "v1", "up")
        self.received: list[tuple[int | None, bytes]] = []
        with netns.inside(namespace):
            self.port = PacketSocketPort("v0", budget=budget, reactor=MemoryReactor())
            self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
            self.wire = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.wire.bind(("v1", ETH_P_ALL))
        self.wire.settimeout(2.0)

    def inject(self, frame: bytes) -> None:
        self.wire.send(frame)

    def wait_readable(self) -> None:
        select.select([self.port.fileno()], [], [], 2.0)

    def written(self, count: int) -> list[bytes]:
        frames = []
        for _ in range(count + 20):
            if len(frames) == count:
                break
            try:
                data, _, _, address = self.wire.recvmsg(65535, 64)
            except TimeoutError:
                break
            if address[2] != PACKET_OUTGOING:
                frames.append(data)
        return frames

    def close(self) -> None:
        self.wire.close()
        self.port.stop_port()


class PacketPortContract:
    def make(self, budget: int = 64):
        raise NotImplementedError

    def test_frame_received_whole(self):
        """
        A frame from the wire reaches the sink whole and is counted.
        """
        port = self.make()
        frame = udp_frame(b"y" * 200)
        port.inject(frame)
        port.wait_readable()
        port.port.doRead()
        assert port.received == [(None, frame)]
        assert port.port.counters.rx_frames == 1
        assert port.port.counters.rx_bytes == len(frame)

    def test_vlan_tag_restored(self):
        """
        The 802.1Q tag that the kernel strips from a received frame is put
        back, with its priority bits.
        """
        port = self.make()
        frame = tagged_udp(vlan=300, priority=6, tos=0x88)
        port.inject(frame)
        port.wait_readable()
        port.port.doRead()
        assert port.received == [(None, frame)]

    def test_priority_tag_restored(self):
        """
        A priority-tagged frame (VLAN 0) keeps its tag.
        """
        port = self.make()
        frame = arp_request(priority=3)
        port.inject(frame)
        port.wait_readable()
        port.port.doRead()
        assert port.received == [(None, frame)]

    def test_send_reaches_wire_and_echo_ignored(self):
        """
        A sent frame reaches the wire unchanged.  The socket also receives
        its own send as an outgoing frame, which is not delivered.
        """
        port = self.make()
        frame = arp_request()
        port.port.send_frame(frame)
        assert port.written(1) == [frame]
        port.wait_readable()
        port.port.doRead()
        assert port.received == []
        assert port.port.counters.tx_frames == 1
        assert port.port.counters.rx_dropped == 0

    def test_read_budget(self):
        """
        One read event takes at most C{budget} frames.
        """
        port = self.make(budget=3)
        frames = [udp_frame(bytes([i]) * 30) for i in range(4)]
        for frame in frames:
            port.inject(frame)
        port.wait_readable()
        port.port.doRead()
        assert [frame for _, frame in port.received] == frames[:3]
        port.port.doRead()
        assert [frame for _, frame in port.received] == frames


class TestMemoryPacketPort(PacketPortContract):
    @pytest.fixture(autouse=True)
    def _ports(self):
        self._opened = []
        yield
        for port in self._opened:
            port.close()

    def make(self, budget: int = 64):
        port = _MemoryPacketPort(budget)
        self._opened.append(port)
        return port

    def test_socket_options(self):
        """
        The socket is non-blocking, enables auxdata, joins promiscuous mode
        on the interface's index and is bound to the interface.
        """
        port = self.make()
        sock = port.socket
        assert (sock.family, sock.type, sock.proto) == (
            socket.AF_PACKET,
            socket.SOCK_RAW,
            socket.htons(ETH_P_ALL),
        )
        assert not sock.blocking
        assert sock.options[(SOL_PACKET, PACKET_AUXDATA)] == 1
        # struct packet_mreq: ifindex 4, PACKET_MR_PROMISC (1), no address.
        assert sock.options[(SOL_PACKET, 1)] == struct.pack("=iHH8s", 4, 1, 0, b"")
        assert sock.bound == ("v0", ETH_P_ALL)

    def test_not_promiscuous(self):
        """
        With C{promiscuous=False} the socket joins no membership.
        """
        system = MemorySocketSystem({"v0": 4})
        port = PacketSocketPort("v0", promiscuous=False, reactor=MemoryReactor(), system=system)
        port.start_port(lambda agg_id, frame: None)
        assert (SOL_PACKET, 1) not in system.sockets[0].options

    def test_missing_interface(self):
        """
        An interface that does not exist fails to start with
        CannotListenError naming it.
        """
        from twisted.internet.error import CannotListenError

        port = PacketSocketPort("nosuch0", reactor=MemoryReactor(), system=MemorySocketSystem())
        with pytest.raises(CannotListenError, match="nosuch0"):
            port.start_port(lambda agg_id, frame: None)

    def test_read_error_keeps_reading(self):
        """
        A read error is counted and the frames after it are still read.
        """
        port = self.make()
        port.socket.incoming.append(OSError(errno.ENETDOWN, "Network is down"))
        frame = udp_frame()
        port.inject(frame)
        port.port.doRead()
        assert port.port.counters.rx_errors == 1
        assert port.received == [(None, frame)]

    def test_send_queue_full_is_drop(self):
        """
        ENOBUFS on send is a drop; other errors are errors.
        """
        port = self.make()
        port.socket.send_error = OSError(errno.ENOBUFS, "No buffer space available")
        port.port.send_frame(udp_frame())
        port.socket.send_error = OSError(errno.ENETDOWN, "Network is down")
        port.port.send_frame(udp_frame())
        assert port.port.counters.tx_dropped == 1
        assert port.port.counters.tx_errors == 1
        assert port.port.counters.tx_frames == 0


class TestRestoreVlanTag:
    def test_default_tpid(self):
        """
        Without TP_STATUS_VLAN_TPID_VALID the tag is restored as 802.1Q.
        """
        frame = udp_frame()
        auxdata = _AUXDATA.pack(TP_STATUS_VLAN_VALID, 0, 0, 0, 0, 0x2005, 0)
        restored = restore_vlan_tag(frame, [(SOL_PACKET, PACKET_AUXDATA, auxdata)])
        assert restored == frame[:12] + b"\x81\x00\x20\x05" + frame[12:]

    def test_service_tag(self):
        """
        An 802.1ad TPID reported by the kernel is kept.
        """
        frame = udp_frame()
        status = TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
        auxdata = _AUXDATA.pack(status, 0, 0, 0, 0, 0x0064, 0x88A8)
        restored = restore_vlan_tag(frame, [(SOL_PACKET, PACKET_AUXDATA, auxdata)])
        assert restored == frame[:12] + b"\x88\xa8\x00\x64" + frame[12:]

    def test_no_tag(self):
        """
        Without VLAN_VALID, or without auxdata, the frame is unchanged.
        """
        frame = udp_frame()
        auxdata = _AUXDATA.pack(0, 0, 0, 0, 0, 0x2005, 0x8100)
        assert restore_vlan_tag(frame, [(SOL_PACKET, PACKET_AUXDATA, auxdata)]) is frame
        assert restore_vlan_tag(frame, []) is frame
        assert restore_vlan_tag(frame, [(SOL_PACKET, PACKET_AUXDATA, b"\x10")]) is frame


@pytest.mark.netns
@pytest.mark.skipif(not netns.CAN_USE_NETNS, reason="needs root, /dev/net/tun and iproute2")
class TestRealPacketPort(PacketPortContract):
    @pytest.fixture(autouse=True)
    def _namespace(self):
        self._opened = []
        with netns.namespaces("pkt") as (namespace,):
            self._namespace_object = namespace
            try:
                yield
            finally:
                for port in self._opened:
                    port.close()

    def make(self, budget: int = 64):
        port = _RealPacketPort(self._namespace_object, budget)
        self._opened.append(port)
        return port

    def test_interface_promiscuous(self):
        """
        The port puts the interface in promiscuous mode while it is open.
        """
        self.make()
        details = self._namespace_object.ip("-d", "link", "show", "v0")
        assert "promiscuity 1" in details
