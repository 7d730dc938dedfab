"""
Memory fakes for the socket ports and a learning-bridge test double.
"""

import errno
from collections import deque

__all__ = ["FakeSocket", "LearningBridge", "MemorySocketSystem"]


class FakeSocket:
    """
    A non-blocking socket in memory: received packets are queued by the
    test, sent packets are recorded.

    Each queued item is what C{recvmsg} returns, C{(data, ancillary, flags,
    address)}, or an L{OSError} instance to raise from the next read.
    """

    def __init__(self, family: int, type: int, proto: int, number: int) -> None:
        self.family = family
        self.type = type
        self.proto = proto
        self._number = number
        self.blocking = True
        self.options: dict[tuple[int, int], object] = {}
        self.bound = None
        self.closed = False
        self.incoming: deque = deque()
        self.sent: list[tuple[bytes, object, list]] = []
        self.send_error: OSError | None = None

    def fileno(self) -> int:
        return -1 if self.closed else self._number

    def setblocking(self, flag: bool) -> None:
        self.blocking = flag

    def setsockopt(self, level: int, option: int, value) -> None:
        self.options[(level, option)] = value

    def bind(self, address) -> None:
        self.bound = address

    def close(self) -> None:
        self.closed = True

    def _next(self):
        if not self.incoming:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        item = self.incoming.popleft()
        if isinstance(item, OSError):
            raise item
        return item

    def recvmsg(self, size: int, ancillary_size: int = 0):
        data, ancillary, flags, address = self._next()
        return data[:size], ancillary, flags, address

    def recvfrom(self, size: int):
        data, _, _, address = self._next()
        return data[:size], address

    def _record(self, data: bytes, address, ancillary) -> int:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append((bytes(data), address, ancillary))
        return len(data)

    def send(self, data: bytes) -> int:
        return self._record(data, None, [])

    def sendto(self, data: bytes, address) -> int:
        return self._record(data, address, [])

    def sendmsg(self, buffers, ancillary=(), flags=0, address=None) -> int:
        return self._record(b"".join(buffers), address, list(ancillary))


class MemorySocketSystem:
    """
    The C{system=} object of a socket port, with sockets in memory.
    """

    def __init__(self, interfaces: dict[str, int] | None = None) -> None:
        self.interfaces = dict(interfaces or {})
        self.sockets: list[FakeSocket] = []

    def socket(self, family: int, type: int, proto: int = 0) -> FakeSocket:
        sock = FakeSocket(family, type, proto, 100 + len(self.sockets))
        self.sockets.append(sock)
        return sock

    def if_nametoindex(self, name: str) -> int:
        try:
            return self.interfaces[name]
        except KeyError:
            raise OSError(errno.ENODEV, f"no such device: {name}") from None


class LearningBridge:
    """
    A test double of the bridge contract: learns source MAC addresses per
    (port, agg_id), forwards known unicast there and floods the rest to
    every other port and aggregation member.
    """

    def __init__(self) -> None:
        self.ports: list[tuple[str, bool, bool]] = []
        self.members: dict[int, list[int]] = {}
        self.table: dict[bytes, tuple[int, int | None]] = {}
        self.processed: list[tuple[int, int | None, bytes, float]] = []
        self.removed: list[int] = []

    def add_port(self, name, *, aggregation=False, access_controlled=False) -> int:
        self.ports.append((name, aggregation, access_controlled))
        number = len(self.ports)
        self.members[number] = []
        return number

    def add_member(self, port: int, agg_id: int) -> None:
        self.members[port].append(agg_id)

    def remove_member(self, port: int, agg_id: int) -> None:
        self.members[port].remove(agg_id)

    def remove_port(self, port: int) -> None:
        # Numbers stay as they are, so removed ports are only recorded.
        self.removed.append(port)
        del self.members[port]

    def _all_egress(self):
        for number, (_, aggregation, _) in enumerate(self.ports, start=1):
            if number in self.removed:
                continue
            if aggregation:
                for agg_id in self.members[number]:
                    yield number, agg_id
            else:
                yield number, None

    def process(self, port, agg_id, frame, now):
        self.processed.append((port, agg_id, frame, now))
        if len(frame) < 14:
            return []
        ingress = (port, agg_id)
        self.table[frame[6:12]] = ingress
        known = self.table.get(frame[0:6])
        if known is not None:
            return [] if known == ingress else [known]
        return [egress for egress in self._all_egress() if egress[0] != port]
