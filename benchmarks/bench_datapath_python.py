"""
Python cost per frame of the forwarding path, without system calls: the
ports run on memory devices, so what remains is the port code, the
dispatcher, the bridge core and the tunnel engine.

Run from the repository root::

    python benchmarks/bench_datapath_python.py

Paths measured, each with 64-byte and 1400-byte frames:

  - tap to tap: TapPort -> BridgeDispatcher -> Bridge -> TapPort
  - tap to GRE: TapPort -> ... -> RawGrePort with the tunnel engine
    (key and sequence number)
  - GRE to tap: RawGrePort -> ... -> TapPort

The figure is the median over five runs of the process CPU time per frame,
which waiting for a CPU on a busy machine does not inflate (cache and
frequency effects of other work still do).
"""

import collections
import errno
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.testing import MemoryReactorClock

from roaming.bridge.core import Bridge
from roaming.ports.dispatch import BridgeDispatcher
from roaming.ports.gre import RawGrePort
from roaming.ports.tap import TapPort
from roaming.tunnel.endpoint import GreEndpoint
from tests.ports.fakes import MemorySocketSystem
from tests.ports.frames import udp_frame

FRAMES = 100_000
RUNS = 5
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


class _TapSystem:
    """
    The OS calls of TAP ports, with devices as queues in memory and writes
    discarded after counting.
    """

    O_RDWR = os.O_RDWR
    O_NONBLOCK = os.O_NONBLOCK
    O_CLOEXEC = os.O_CLOEXEC

    def __init__(self) -> None:
        self.queues: dict[int, collections.deque] = {}
        self.written = 0

    def open(self, name, flags, mode=None) -> int:
        fd = 100 + len(self.queues)
        self.queues[fd] = collections.deque()
        return fd

    def ioctl(self, fd, request, argument):
        return argument

    def read(self, fd, limit):
        queue = self.queues[fd]
        if not queue:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return queue.popleft()

    def write(self, fd, data):
        self.written += 1
        return len(data)

    def close(self, fd) -> None:
        del self.queues[fd]


def _payload(size: int) -> bytes:
    return b"\x00" * (size - len(udp_frame(b"")))


def measure(path: str, size: int) -> float:
    """
    Return the median microseconds per frame of C{path} for C{size}-byte
    frames.
    """
    clock = MemoryReactorClock()
    taps = _TapSystem()
    sockets = MemorySocketSystem()
    dispatcher = BridgeDispatcher(Bridge(), clock=clock)
    ingress = TapPort(b"a", system=taps, reactor=clock)
    dispatcher.attach(ingress)

    engine = GreEndpoint("192.0.2.1")
    engine.add_tunnel(1, "192.0.2.2", 0x10, sequence=True)
    peer = GreEndpoint("192.0.2.2")
    peer.add_tunnel(1, "192.0.2.1", 0x10, sequence=True)
    if path == "tap to tap":
        dispatcher.attach(TapPort(b"b", system=taps, reactor=clock))
    else:
        dispatcher.attach(RawGrePort("192.0.2.1", engine, system=sockets, reactor=clock))
        sockets.sockets[0].sent = collections.deque(maxlen=1)

    forward = udp_frame(_payload(size), src=MAC_A, dst=MAC_B)
    reverse = udp_frame(_payload(size), src=MAC_B, dst=MAC_A)
    # Teach the bridge both stations, so every measured frame is known unicast.
    if path == "tap to tap":
        taps.queues[101].append(reverse)
        dispatcher.ports()[2].doRead()
    else:
        packet = peer.encapsulate(1, reverse, 0.0).packets[0]
        sockets.sockets[0].incoming.append((packet, [], 0, ("192.0.2.2", 0)))
        dispatcher.ports()[2].doRead()
    taps.queues[100].append(forward)
    ingress.doRead()

    results = []
    for _ in range(RUNS):
        if path == "GRE to tap":
            port = dispatcher.ports()[2]
            queue = sockets.sockets[0].incoming
            packets = [peer.encapsulate(1, reverse, 0.0).packets[0] for _ in range(FRAMES)]
            queue.extend((packet, [], 0, ("192.0.2.2", 0)) for packet in packets)
        else:
            port = ingress
            queue = taps.queues[100]
            queue.extend([forward] * FRAMES)
        start = time.process_time()
        while queue:
            port.doRead()
        results.append((time.process_time() - start) / FRAMES * 1e6)
    return statistics.median(results)


def main() -> int:
    load = os.getloadavg()[0]
    print("| path | frame bytes | us/frame |")
    print("|---|---|---|")
    for path in ("tap to tap", "tap to GRE", "GRE to tap"):
        for size in (64, 1400):
            print(f"| {path} | {size} | {measure(path, size):.2f} |", flush=True)
    print(f"load average before: {load:.1f}, after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
