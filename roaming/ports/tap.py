# -*- test-case-name: tests.ports.test_tap -*-
"""
TAP device ports: whole Ethernet frames in and out of a Linux TAP device
through L{twisted.pair.tuntap.TuntapPort}.
"""

import errno
from collections.abc import Callable

from twisted.internet import error
from twisted.logger import Logger
from twisted.pair.ethernet import IEthernetProtocol
from twisted.pair.tuntap import TuntapPort
from zope.interface import implementer

from roaming.ports.counters import PortCounters, RepeatLimitedLog

__all__ = [
    "DEFAULT_READ_BUDGET",
    "DEVICE_COUNTERS",
    "EthernetFrameProtocol",
    "FrameSink",
    "TapPort",
]

DEFAULT_READ_BUDGET = 64
"""Frames one port reads per reactor wake-up before it lets other ports run."""

FrameSink = Callable[[int | None, bytes], None]
"""Receiver of C{(aggregation ID, frame)}; plain ports pass C{None} as the ID."""

# A read returns at most this many bytes; a longer frame would be truncated by
# the kernel.  9216 covers a 9000-byte MTU with Ethernet and two VLAN tags.
DEFAULT_MAX_FRAME_SIZE = 9216

_QUEUE_FULL = frozenset({errno.EAGAIN, errno.ENOBUFS})

DEVICE_COUNTERS = (
    "rx_packets",
    "tx_packets",
    "rx_bytes",
    "tx_bytes",
    "rx_errors",
    "tx_errors",
    "rx_dropped",
    "tx_dropped",
)
"""Kernel counters that L{TapPort.device_statistics} returns.  The kernel's
"tx" is towards this port: C{tx_dropped} counts frames dropped because the
port did not read them before the device queue filled."""

_log = Logger()


@implementer(IEthernetProtocol)
class EthernetFrameProtocol:
    """
    Protocol of a TAP port: hand every received Ethernet frame, whole and
    unparsed, to a frame sink.

    L{TuntapPort} opens the device in TAP mode because this protocol provides
    L{IEthernetProtocol}.
    """

    transport = None

    def __init__(self) -> None:
        self.sink: FrameSink | None = None

    def makeConnection(self, transport) -> None:
        self.transport = transport

    def doStop(self) -> None:
        self.transport = None

    def addProto(self, num, proto) -> None:
        """
        Reject sub-protocols: the bridge needs whole frames, so this protocol
        does not demultiplex by EtherType.
        """
        raise NotImplementedError(
            "EthernetFrameProtocol passes whole frames to its sink; "
            "use twisted.pair.ethernet.EthernetProtocol to dispatch by EtherType"
        )

    def datagramReceived(self, data: bytes, partial: int = 0) -> None:
        if self.sink is not None:
            self.sink(None, data)


class TapPort(TuntapPort):
    """
    A bridge port on a TAP device.

    Reads are batched: one wake-up reads until the device has no frame left
    (C{EAGAIN}) or C{budget} frames were read, so a flooded port cannot
    starve the other descriptors of the reactor.  An OS error on read is
    counted and logged, and the port keeps reading.  A send that finds the
    device queue full is counted in C{tx_dropped}; there is no user-space
    send queue.

    NOTE: the port uses L{TuntapPort}'s private C{_bindSocket}, C{_system}
    and C{_fileno}, as of Twisted 26.10, because TuntapPort has no public
    way to read with a frame budget or to open the device without starting
    to read.

    @ivar counters: the L{PortCounters} of this port.
    """

    def __init__(
        self,
        interface: bytes,
        *,
        budget: int = DEFAULT_READ_BUDGET,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        tx_queue_length: int | None = None,
        reactor=None,
        system=None,
        netlink=None,
    ) -> None:
        """
        @param interface: name of the TAP device to create or attach to, at
            most 15 bytes.
        @param budget: maximum frames read per reactor wake-up.
        @param max_frame_size: read size; longer frames are truncated by the
            kernel, so set it above the device MTU plus 18 bytes.
        @param system: the OS calls, L{twisted.pair.testing.MemoryIOSystem}
            in tests; L{None} for the real ones.
        @param tx_queue_length: if given, the device's C{txqueuelen} in
            frames, set over netlink when the port starts.  It is the queue of
            frames the kernel holds for this port to read, 1000 by default.
            A longer one absorbs longer waits for a CPU, but adds latency
            when it fills.
        @param netlink: a factory of pyroute2 C{IPRoute}-like objects for
            L{device_statistics} and C{tx_queue_length}; L{None} for
            pyroute2's C{IPRoute}.
        """
        if budget < 1:
            raise ValueError(f"read budget must be at least 1 frame, got {budget}")
        if tx_queue_length is not None and tx_queue_length < 1:
            raise ValueError(f"TX queue length must be at least 1 frame, got {tx_queue_length}")
        super().__init__(
            interface,
            EthernetFrameProtocol(),
            maxPacketSize=max_frame_size,
            reactor=reactor,
            system=system,
        )
        self.budget = budget
        self.counters = PortCounters()
        self._errors = RepeatLimitedLog(_log)
        self._netlink = netlink
        self.tx_queue_length = tx_queue_length

    @property
    def name(self) -> str:
        """Interface name as text, for logs and the bridge's port name."""
        interface = self.interface
        return interface.decode() if isinstance(interface, bytes) else str(interface)

    def start_port(self, sink: FrameSink) -> None:
        """
        Open the device and start passing received frames to C{sink}.

        @raise twisted.internet.error.CannotListenError: the device could not
            be opened (no C{/dev/net/tun}, no privilege, name in use), or its
            queue length could not be set.
        """
        self.protocol.sink = sink
        # startListening, with the queue length set before reading starts.
        self._bindSocket()
        if self.tx_queue_length is not None:
            self._set_tx_queue_length()
        self.protocol.makeConnection(self)
        self.startReading()

    def stop_port(self):
        """
        Stop reading and close the device.

        @return: a L{Deferred} that fires when the device is closed.
        """
        return self.stopListening()

    def device_statistics(self) -> dict[str, int] | None:
        """
        Read the kernel's counters of the device (L{DEVICE_COUNTERS}) over
        netlink, in the network namespace of the calling thread.

        @return: the counters, or L{None} when no device of that name is in
            the namespace, for example after it was moved to another one.
        """
        from pyroute2.netlink.exceptions import NetlinkError

        with self._open_netlink() as netlink:
            try:
                [link] = netlink.link("get", ifname=self.name)
            except NetlinkError as e:
                if e.code == errno.ENODEV:
                    return None
                raise
        statistics = link.get_attr("IFLA_STATS64")
        return {name: statistics[name] for name in DEVICE_COUNTERS}

    def _set_tx_queue_length(self) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            # The TUN driver resizes its frame ring when txqueuelen changes.
            with self._open_netlink() as netlink:
                netlink.link("set", ifname=self.name, txqlen=self.tx_queue_length)
        except NetlinkError as e:
            self._system.close(self._fileno)
            self.connected = 0
            raise error.CannotListenError(None, self.interface, e) from e

    def _open_netlink(self):
        if self._netlink is None:
            from pyroute2 import IPRoute

            self._netlink = IPRoute
        return self._netlink()

    def doRead(self) -> None:
        read = self._system.read
        fileno = self._fileno
        limit = self.maxPacketSize
        deliver = self.protocol.datagramReceived
        counters = self.counters

        for _ in range(self.budget):
            try:
                frame = read(fileno, limit)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                counters.rx_errors += 1
                self._errors.error(
                    "read",
                    "Read from TAP device {interface} failed: {error}",
                    interface=self.name,
                    error=e,
                )
                return

            counters.rx_frames += 1
            counters.rx_bytes += len(frame)
            deliver(frame, 0)

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None:
        """
        Write one frame to the device; the kernel receives it as if it had
        arrived on the interface.

        @param agg_id: ignored, a TAP port has no aggregation members.
        """
        try:
            self._system.write(self._fileno, frame)
        except OSError as e:
            if e.errno in _QUEUE_FULL:
                self.counters.tx_dropped += 1
                return
            self.counters.tx_errors += 1
            self._errors.error(
                "write",
                "Write to TAP device {interface} failed: {error}",
                interface=self.name,
                error=e,
            )
            return
        self.counters.tx_frames += 1
        self.counters.tx_bytes += len(frame)
