"""
Tests for L{roaming.ports.tap}: the same cases on the memory fake of
L{twisted.pair.testing} and on a real TAP device in a network namespace.
"""

import errno
import json
import select
import socket

import pytest
from twisted.internet.testing import MemoryReactor
from twisted.pair.testing import MemoryIOSystem, Tunnel
from twisted.pair.tuntap import _TUN_KO_PATH

from roaming.ports.packet import ETH_P_ALL, PACKET_OUTGOING
from roaming.ports.tap import DEVICE_COUNTERS, EthernetFrameProtocol, TapPort

from . import netns
from .frames import arp_request, tagged_udp, udp_frame


class _FakeLink:
    def __init__(self, statistics: dict[str, int]) -> None:
        self._statistics = statistics

    def get_attr(self, name: str):
        assert name == "IFLA_STATS64"
        return self._statistics


class _FakeNetlink:
    """
    A pyroute2 C{IPRoute} stand-in that reports the memory device's
    counters the way the kernel counts them.
    """

    def __init__(self, tap: "_MemoryTap") -> None:
        self._tap = tap

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def link(self, command: str, ifname: str, **attributes):
        assert ifname == self._tap.port.name
        if command == "set":
            self._tap.link_settings.update(attributes)
            return []
        assert command == "get"
        statistics = dict.fromkeys(DEVICE_COUNTERS, 0)
        # Frames the port writes are packets the kernel receives.
        statistics["rx_packets"] = len(self._tap.tunnel.writeBuffer)
        return [_FakeLink(statistics)]


class _MemoryTap:
    """
    A TAP port on L{MemoryIOSystem}: frames are injected into the fake
    device's read buffer and read back from its write buffer.
    """

    def __init__(self, budget: int, tx_queue_length: int | None) -> None:
        self.system = MemoryIOSystem()
        self.system.registerSpecialDevice(_TUN_KO_PATH, Tunnel)
        self.received: list[tuple[int | None, bytes]] = []
        self.link_settings: dict[str, int] = {"txqlen": 1000}
        self.port = TapPort(
            b"rtap0",
            budget=budget,
            tx_queue_length=tx_queue_length,
            reactor=MemoryReactor(),
            system=self.system,
            netlink=lambda: _FakeNetlink(self),
        )
        self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
        self.tunnel = self.system.getTunnel(self.port)

    def inject(self, frame: bytes) -> None:
        self.tunnel.readBuffer.append(frame)

    def wait_readable(self) -> None:
        pass

    def statistics(self) -> dict[str, int] | None:
        return self.port.device_statistics()

    def queue_length(self) -> int:
        return self.link_settings["txqlen"]

    def written(self, count: int) -> list[bytes]:
        return list(self.tunnel.writeBuffer)[:count]

    def close(self) -> None:
        self.port.connectionLost(None)


class _RealTap:
    """
    A TAP port on a real TAP device in a namespace; the wire side is a packet
    socket bound to the same device.
    """

    def __init__(
        self, namespace: netns.Namespace, budget: int, tx_queue_length: int | None
    ) -> None:
        self.namespace = namespace
        self.received: list[tuple[int | None, bytes]] = []
        with netns.inside(namespace):
            self.port = TapPort(
                b"rtap0", budget=budget, tx_queue_length=tx_queue_length, reactor=MemoryReactor()
            )
            self.port.start_port(lambda agg_id, frame: self.received.append((agg_id, frame)))
        namespace.ip("link", "set", "rtap0", "up")
        with netns.inside(namespace):
            self.wire = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.wire.bind(("rtap0", ETH_P_ALL))
        self.wire.settimeout(2.0)

    def inject(self, frame: bytes) -> None:
        # A frame sent on the interface is what the TAP file descriptor reads.
        self.wire.send(frame)

    def wait_readable(self) -> None:
        select.select([self.port.fileno()], [], [], 2.0)

    def statistics(self) -> dict[str, int] | None:
        with netns.inside(self.namespace):
            return self.port.device_statistics()

    def queue_length(self) -> int:
        return json.loads(self.namespace.ip("-j", "link", "show", "rtap0"))[0]["txqlen"]

    def written(self, count: int) -> list[bytes]:
        frames = []
        for _ in range(count + 20):
            if len(frames) == count:
                break
            try:
                data, address = self.wire.recvfrom(65535)
            except TimeoutError:
                break
            if address[2] != PACKET_OUTGOING:
                frames.append(data)
        return frames

    def close(self) -> None:
        self.wire.close()
        self.port.connectionLost(None)


class TapPortContract:
    """
    Cases that hold for the memory fake and the real device alike.
    """

    def make(self, budget: int = 64, tx_queue_length: int | None = None):
        raise NotImplementedError

    def test_tx_queue_length(self):
        """
        The port sets the device's queue length when asked, and leaves the
        default of 1000 frames otherwise.
        """
        assert self.make().queue_length() == 1000
        self.close_all()
        assert self.make(tx_queue_length=5000).queue_length() == 5000

    def test_frame_received_whole(self):
        """
        A frame on the device reaches the sink whole, without an
        aggregation ID, and is counted.
        """
        tap = self.make()
        frame = udp_frame(b"x" * 100)
        tap.inject(frame)
        tap.wait_readable()
        tap.port.doRead()
        assert tap.received == [(None, frame)]
        assert tap.port.counters.rx_frames == 1
        assert tap.port.counters.rx_bytes == len(frame)

    def test_tagged_frame_received_whole(self):
        """
        A TAP device keeps 802.1Q tags in the frames it delivers.
        """
        tap = self.make()
        frame = tagged_udp(vlan=42, priority=5)
        tap.inject(frame)
        tap.wait_readable()
        tap.port.doRead()
        assert tap.received == [(None, frame)]

    def test_send_reaches_device(self):
        """
        A sent frame appears on the device unchanged and is counted.
        """
        tap = self.make()
        frame = arp_request()
        tap.port.send_frame(frame)
        assert tap.written(1) == [frame]
        assert tap.port.counters.tx_frames == 1
        assert tap.port.counters.tx_bytes == len(frame)

    def test_read_budget(self):
        """
        One read event takes at most C{budget} frames; the rest wait for
        the next one, in order.
        """
        tap = self.make(budget=2)
        frames = [udp_frame(bytes([i]) * 20) for i in range(5)]
        for frame in frames:
            tap.inject(frame)
        tap.wait_readable()
        tap.port.doRead()
        assert [frame for _, frame in tap.received] == frames[:2]
        tap.port.doRead()
        tap.port.doRead()
        assert [frame for _, frame in tap.received] == frames
        assert tap.port.counters.rx_frames == 5

    def test_device_statistics(self):
        """
        The kernel's counters of the device count a frame the port wrote
        as received by the kernel.
        """
        tap = self.make()
        tap.port.send_frame(udp_frame())
        statistics = tap.statistics()
        assert set(statistics) == set(DEVICE_COUNTERS)
        assert statistics["rx_packets"] >= 1
        assert statistics["rx_dropped"] == 0

    def test_read_drained(self):
        """
        A read event on an empty device returns without frames or errors.
        """
        tap = self.make()
        tap.port.doRead()
        assert tap.received == []
        assert tap.port.counters.rx_errors == 0


class TestMemoryTap(TapPortContract):
    @pytest.fixture(autouse=True)
    def _ports(self):
        self._opened = []
        yield
        for tap in self._opened:
            tap.close()

    def make(self, budget: int = 64, tx_queue_length: int | None = None):
        tap = _MemoryTap(budget, tx_queue_length)
        self._opened.append(tap)
        return tap

    def close_all(self) -> None:
        while self._opened:
            self._opened.pop().close()

    def test_opens_tap_without_packet_information(self):
        """
        The device is opened in TAP mode without the 4-byte packet
        information header, non-blocking and close-on-exec.
        """
        tap = self.make()
        assert tap.tunnel.tunnelMode == 0x0002 | 0x1000
        assert not tap.tunnel.blocking
        assert tap.tunnel.closeOnExec

    def test_read_error_counted(self):
        """
        A read error other than EAGAIN is counted and ends the read event
        without closing the port.
        """
        tap = self.make()

        def failing_read(limit):
            raise OSError(errno.EIO, "Input/output error")

        tap.tunnel.read = failing_read
        tap.port.doRead()
        assert tap.port.counters.rx_errors == 1
        assert tap.port.connected

    def test_full_queue_counted_as_drop(self):
        """
        A send the device cannot queue (ENOBUFS) is a drop, not an error.
        """
        tap = self.make()
        tap.tunnel.SEND_BUFFER_SIZE = 10
        tap.port.send_frame(udp_frame())
        assert tap.port.counters.tx_dropped == 1
        assert tap.port.counters.tx_frames == 0

    def test_interrupted_read_retried(self):
        """
        A read interrupted by a signal is retried in the same event.
        """
        tap = self.make()
        frame = udp_frame()
        tap.inject(frame)
        original = tap.tunnel.read
        calls = []

        def interrupted_once(limit):
            calls.append(limit)
            if len(calls) == 1:
                raise OSError(errno.EINTR, "Interrupted system call")
            return original(limit)

        tap.tunnel.read = interrupted_once
        tap.port.doRead()
        assert tap.received == [(None, frame)]

    def test_queue_length_failure(self):
        """
        A queue length the kernel rejects fails the start with
        CannotListenError and closes the device.
        """
        from pyroute2.netlink.exceptions import NetlinkError
        from twisted.internet.error import CannotListenError

        class RejectingLink(_FakeNetlink):
            def link(self, command, ifname, **attributes):
                raise NetlinkError(errno.EINVAL, "Invalid argument")

        system = MemoryIOSystem()
        system.registerSpecialDevice(_TUN_KO_PATH, Tunnel)
        port = TapPort(
            b"rtap0",
            tx_queue_length=5000,
            reactor=MemoryReactor(),
            system=system,
            netlink=lambda: RejectingLink(None),
        )
        with pytest.raises(CannotListenError):
            port.start_port(lambda agg_id, frame: None)
        assert system._openFiles == {}
        assert not port.connected

    def test_budget_must_be_positive(self):
        """
        A read budget of zero frames is rejected.
        """
        with pytest.raises(ValueError, match="at least 1"):
            TapPort(b"rtap0", budget=0, system=MemoryIOSystem())

    def test_statistics_of_missing_device(self):
        """
        Statistics of a device that is not in the namespace are L{None}.
        """
        from pyroute2.netlink.exceptions import NetlinkError

        class MissingLink(_FakeNetlink):
            def link(self, command, ifname):
                raise NetlinkError(errno.ENODEV, "No such device")

        tap = self.make()
        tap.port._netlink = lambda: MissingLink(tap)
        assert tap.port.device_statistics() is None

    def test_protocol_rejects_sub_protocols(self):
        """
        The frame protocol does not dispatch by EtherType.
        """
        with pytest.raises(NotImplementedError):
            EthernetFrameProtocol().addProto(0x0800, object())


@pytest.mark.netns
@pytest.mark.skipif(not netns.CAN_USE_NETNS, reason="needs root, /dev/net/tun and iproute2")
class TestRealTap(TapPortContract):
    @pytest.fixture(autouse=True)
    def _namespace(self):
        self._opened = []
        with netns.namespaces("tap") as (namespace,):
            self._namespace_object = namespace
            try:
                yield
            finally:
                for tap in self._opened:
                    tap.close()

    def make(self, budget: int = 64, tx_queue_length: int | None = None):
        tap = _RealTap(self._namespace_object, budget, tx_queue_length)
        self._opened.append(tap)
        return tap

    def close_all(self) -> None:
        while self._opened:
            self._opened.pop().close()
