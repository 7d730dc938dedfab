# -*- test-case-name: tests.ports.test_packet -*-
"""
The reactor-integrated socket that the packet-socket and GRE ports share:
a non-blocking socket read in batches, with counted errors.
"""

import errno
import socket

from twisted.internet import abstract, error
from twisted.logger import Logger

from roaming.errors import DecodeError
from roaming.ports.counters import PortCounters, RepeatLimitedLog
from roaming.ports.tap import DEFAULT_READ_BUDGET, FrameSink

__all__ = ["QUEUE_FULL", "RealSocketSystem", "SocketPort"]

QUEUE_FULL = frozenset({errno.EAGAIN, errno.ENOBUFS})
"""Send errors that mean the kernel queue is full: counted as drops."""

_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})


class RealSocketSystem:
    """
    The OS calls of a socket port: L{socket.socket} and
    L{socket.if_nametoindex}.  Tests pass a memory fake with the same methods.
    """

    if_nametoindex = staticmethod(socket.if_nametoindex)
    socket = staticmethod(socket.socket)


class SocketPort(abstract.FileDescriptor):
    """
    Base class of the ports that own one non-blocking socket.

    A subclass opens the socket in L{_open_socket} and reads one packet in
    L{_receive_one}, which returns C{(agg_id, frame)} to deliver, or L{None}
    for a packet that was dropped and already counted.

    One wake-up reads until the socket has no packet left or C{budget}
    packets were read.  C{doRead} handles every L{OSError} itself, so the
    reactor keeps the descriptor registered: a raised error would make the
    reactor drop the reader.
    """

    kind = "socket"
    _log = Logger()

    def __init__(self, *, budget: int = DEFAULT_READ_BUDGET, reactor=None, system=None):
        if budget < 1:
            raise ValueError(f"read budget must be at least 1 packet, got {budget}")
        super().__init__(reactor)
        self.budget = budget
        self.counters = PortCounters()
        self._system = system if system is not None else RealSocketSystem()
        self._socket = None
        self._sink: FrameSink | None = None
        self._errors = RepeatLimitedLog(self._log)

    @property
    def name(self) -> str:
        raise NotImplementedError

    def _open_socket(self):
        raise NotImplementedError

    def _receive_one(self):
        raise NotImplementedError

    def fileno(self) -> int:
        return self._socket.fileno() if self._socket is not None else -1

    def logPrefix(self) -> str:
        return f"{self.kind} {self.name}"

    def start_port(self, sink: FrameSink) -> None:
        """
        Open the socket and start passing received frames to C{sink}.

        @raise twisted.internet.error.CannotListenError: the socket could not
            be opened or bound.
        """
        try:
            self._socket = self._open_socket()
        except OSError as e:
            raise error.CannotListenError(None, self.name, e) from e
        self._sink = sink
        self.connected = 1
        self._log.info("{kind} port {name} started", kind=self.kind, name=self.name)
        self.startReading()

    def stop_port(self) -> None:
        """
        Stop reading and close the socket.
        """
        if self._socket is None:
            return
        self.stopReading()
        self._socket.close()
        self._socket = None
        self.connected = 0
        self._log.info("{kind} port {name} stopped", kind=self.kind, name=self.name)

    def doRead(self) -> None:
        sink = self._sink
        receive = self._receive_one
        counters = self.counters

        for _ in range(self.budget):
            try:
                received = receive()
            except OSError as e:
                if e.errno in _WOULD_BLOCK:
                    return
                if e.errno == errno.EINTR:
                    continue
                # An ICMP error queued on the socket, such as protocol
                # unreachable from a peer whose buffer was full, surfaces
                # here once.  The next read returns data again.
                counters.rx_errors += 1
                self._errors.error(
                    "read",
                    "Read on {kind} port {name} failed: {error}",
                    kind=self.kind,
                    name=self.name,
                    error=e,
                )
                continue
            except DecodeError as e:
                counters.count_decode_error(e.protocol)
                self._errors.error(
                    "decode:" + e.protocol,
                    "Dropped malformed packet on {kind} port {name}: {error}",
                    kind=self.kind,
                    name=self.name,
                    error=e,
                )
                continue

            if received is not None:
                agg_id, frame = received
                counters.rx_frames += 1
                counters.rx_bytes += len(frame)
                sink(agg_id, frame)

    def _count_send_error(self, e: OSError) -> None:
        if e.errno in QUEUE_FULL:
            self.counters.tx_dropped += 1
            return
        self.counters.tx_errors += 1
        self._errors.error(
            "send",
            "Send on {kind} port {name} failed: {error}",
            kind=self.kind,
            name=self.name,
            error=e,
        )

    def connectionLost(self, reason=None) -> None:
        self.stop_port()
        super().connectionLost(reason)
