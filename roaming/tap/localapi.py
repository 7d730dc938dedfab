# -*- test-case-name: tests.daemons.test_roamctl -*-
"""
The local control socket that C{roamctl} talks to.

The protocol is line-delimited JSON over a UNIX stream socket. Each request
is one line, C{{"request": NAME}}, and each response is one line:

    {"ok": true, "request": NAME, "columns": [...], "rows": [[...], ...]}
    {"ok": false, "error": "unknown request 'x': expected one of ..."}

A request names a L{View}: a callable that reads the daemon's state at that
moment and returns a L{Table}. The daemon decides which views exist (C{fdb},
C{l3}, C{clients}, C{tunnels}, C{peers}, C{counters}, C{status}); this
module only serves them. The socket is created with mode 0600 because the
views show client addresses.

Local clients must not starve the control plane, so every connection is
bounded: it serves at most L{MAX_LINES_PER_TURN} requests per reactor
turn, it reads and serves nothing while the peer leaves replies unread
(the transport's write buffer is full), a peer that reads nothing for
L{STALL_TIMEOUT} seconds or sends nothing for L{IDLE_TIMEOUT} seconds is
disconnected, and at most L{MAX_CONNECTIONS} connections are open. Each
limit is counted in L{LocalAPIFactory.counters} and logged at most once
per ten seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.interfaces import IPushProducer, IReactorUNIX, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

__all__ = [
    "COUNTER_NAMES",
    "IDLE_TIMEOUT",
    "LOG_INTERVAL",
    "MAX_CONNECTIONS",
    "MAX_LINES_PER_TURN",
    "MAX_REQUEST_LENGTH",
    "STALL_TIMEOUT",
    "LocalAPIFactory",
    "LocalAPIProtocol",
    "Table",
    "View",
    "local_api_service",
]

# A request is a short JSON object; anything longer is a client error.
MAX_REQUEST_LENGTH = 1024
# Requests served per connection in one reactor turn. With 8, a burst of
# 5,000 requests for a 300-row table kept the longest reactor stall at
# 15 to 40 ms (1.1 to 1.2 s without the bound), far inside the control
# plane's 1 s keepalive interval (docs/benchmarks.md, 2 vCPU under load).
MAX_LINES_PER_TURN = 8
# Open roamctl connections; one more gets an error line and is closed.
MAX_CONNECTIONS = 64
# Seconds a connection may stay silent before the daemon closes it.
IDLE_TIMEOUT = 60.0
# Seconds a peer may leave replies unread before the daemon disconnects it.
STALL_TIMEOUT = 10.0
# Seconds between two log lines about the same limit.
LOG_INTERVAL = 10.0
COUNTER_NAMES = (
    "rejected_connections",
    "idle_timeouts",
    "stalled_disconnects",
    "oversized_requests",
    "write_pauses",
    "deferred_batches",
)


def _encode(response: dict[str, Any]) -> bytes:
    return json.dumps(response, separators=(",", ":")).encode("utf-8")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes) and len(value) == 6:
        return ":".join(f"{byte:02x}" for byte in value)
    return str(value)


@attrs.frozen
class Table:
    """
    A view's result: named columns and rows of plain values. Values that
    JSON cannot carry are sent as strings, and 6-byte C{bytes} as MAC
    addresses.
    """

    columns: tuple[str, ...] = attrs.field(converter=tuple)
    rows: tuple[tuple[Any, ...], ...] = attrs.field(
        converter=lambda rows: tuple(tuple(row) for row in rows)
    )

    def __attrs_post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"row {row!r} has {len(row)} values for {len(self.columns)} columns"
                )

    @classmethod
    def from_records(cls, columns: Sequence[str], records: Iterable[Mapping[str, Any]]) -> Table:
        """
        Build a table from mappings, taking C{columns} from each (missing
        ones become C{None}).
        """
        return cls(columns, [[record.get(column) for column in columns] for record in records])

    def to_json(self) -> dict[str, Any]:
        """
        Convert to the C{columns} and C{rows} members of a response.
        """
        return {
            "columns": list(self.columns),
            "rows": [[_jsonable(value) for value in row] for row in self.rows],
        }


View = Callable[[], Table]


@implementer(IPushProducer)
class LocalAPIProtocol(Protocol):
    """
    Serves one roamctl connection: one response line per request line.

    The connection is a push producer registered with its own transport, so
    the transport pauses it while the peer leaves replies unread. While
    paused, it reads and serves nothing, and a peer that reads no reply for
    L{LocalAPIFactory.stall_timeout} seconds is disconnected. It serves at
    most L{MAX_LINES_PER_TURN} requests per reactor turn and stops reading
    until the rest are served, so that one client cannot hold the reactor
    away from the control plane.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_LENGTH

    def __init__(self) -> None:
        self._buffer = b""
        self._paused_by_transport = False
        self._batch_call: Any = None
        self._idle_call: Any = None
        self._stall_call: Any = None
        self._closing = False

    def connectionMade(self) -> None:
        """
        Count the connection, register as the transport's producer and
        start the idle timer.
        """
        self.factory.connection_opened(self)
        self.transport.registerProducer(self, True)
        self._reset_idle_timer()

    def connectionLost(self, reason: Any = None) -> None:
        """
        Cancel the timers and forget the connection.
        """
        for call in (self._batch_call, self._idle_call, self._stall_call):
            if call is not None and call.active():
                call.cancel()
        self._batch_call = self._idle_call = self._stall_call = None
        self.factory.connection_closed(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Buffer the bytes and respond to the complete requests among them.
        """
        if self._closing:
            return
        self._buffer += data
        self._reset_idle_timer()
        if self._batch_call is None and not self._paused_by_transport:
            self._serve_batch()

    def _serve_batch(self) -> None:
        self._batch_call = None
        served = 0
        while not self._closing and not self._paused_by_transport:
            line, found, rest = self._buffer.partition(self.delimiter)
            if not found:
                if len(self._buffer) > self.MAX_LENGTH:
                    self._reject_oversized()
                return
            if len(line) > self.MAX_LENGTH:
                self._reject_oversized()
                return
            if served == MAX_LINES_PER_TURN:
                # Stop reading until the next turn has served the rest.
                self.transport.pauseProducing()
                self._batch_call = self.factory.reactor.callLater(0, self._resume_batch)
                self.factory.count("deferred_batches")
                return
            self._buffer = rest
            served += 1
            response = self.factory.respond(line.rstrip(b"\r"))
            self.transport.write(_encode(response) + self.delimiter)

    def _resume_batch(self) -> None:
        self._batch_call = None
        self._serve_batch()
        if self._batch_call is None and not self._paused_by_transport and not self._closing:
            self.transport.resumeProducing()

    def _reject_oversized(self) -> None:
        self.factory.count("oversized_requests")
        self.factory.warn(
            "oversized_requests",
            "Local API request longer than {limit} bytes; closing the connection",
            limit=self.MAX_LENGTH,
        )
        error = {"ok": False, "error": f"request longer than {self.MAX_LENGTH} bytes"}
        self._close_with(error)

    def _close_with(self, error: dict[str, Any]) -> None:
        self._closing = True
        self._buffer = b""
        self.transport.write(_encode(error) + self.delimiter)
        self.transport.loseConnection()

    # IPushProducer, called by the transport about its write buffer.

    def pauseProducing(self) -> None:
        """
        Stop reading and responding, because the peer has left replies unread.
        """
        if self._paused_by_transport:
            return
        self._paused_by_transport = True
        self.factory.count("write_pauses")
        self.transport.pauseProducing()
        self._stall_call = self.factory.reactor.callLater(self.factory.stall_timeout, self._stalled)

    def resumeProducing(self) -> None:
        """
        Respond to the buffered requests and read again, because the peer has read.
        """
        if not self._paused_by_transport:
            return
        self._paused_by_transport = False
        if self._stall_call is not None and self._stall_call.active():
            self._stall_call.cancel()
        self._stall_call = None
        if self._closing:
            return
        self._reset_idle_timer()
        if self._batch_call is None:
            self._serve_batch()
        if self._batch_call is None and not self._paused_by_transport and not self._closing:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        Stop responding, because the transport is closing.
        """
        self._closing = True

    def _stalled(self) -> None:
        self._stall_call = None
        self.factory.count("stalled_disconnects")
        self.factory.warn(
            "stalled_disconnects",
            "Local API client read no reply for {timeout} s; disconnecting",
            timeout=self.factory.stall_timeout,
        )
        self._closing = True
        self.transport.abortConnection()

    def _reset_idle_timer(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.factory.idle_timeout)
            return
        self._idle_call = self.factory.reactor.callLater(self.factory.idle_timeout, self._idle)

    def _idle(self) -> None:
        self._idle_call = None
        if self._paused_by_transport or self._closing:
            # The stall timer decides about a peer that is not reading.
            return
        self.factory.count("idle_timeouts")
        self.factory.info(
            "idle_timeouts",
            "Local API client sent nothing for {timeout} s; closing the connection",
            timeout=self.factory.idle_timeout,
        )
        self._close_with({"ok": False, "error": f"idle for {self.factory.idle_timeout} s"})


class _RejectProtocol(Protocol):
    """
    Sends one error line to a connection over the cap and closes it.
    """

    def connectionMade(self) -> None:
        error = {"ok": False, "error": "too many roamctl connections; retry later"}
        self.transport.write(_encode(error) + b"\n")
        self.transport.loseConnection()


class LocalAPIFactory(Factory):
    """
    Builds L{LocalAPIProtocol}s serving C{views}, a mapping from request
    name to L{View}.

    @ivar counters: how often each limit acted, by name:
        C{rejected_connections}, C{idle_timeouts}, C{stalled_disconnects},
        C{oversized_requests}, C{write_pauses} and C{deferred_batches}.
    """

    protocol = LocalAPIProtocol
    log = Logger()

    def __init__(
        self,
        views: Mapping[str, View],
        *,
        reactor: Any = None,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        stall_timeout: float = STALL_TIMEOUT,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.views = views
        self.reactor = reactor
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stall_timeout = stall_timeout
        self.connections: set[LocalAPIProtocol] = set()
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def buildProtocol(self, addr: Any) -> Protocol:
        """
        Build a protocol for a new connection, or a rejecting one when
        L{max_connections} are open already.
        """
        if len(self.connections) >= self.max_connections:
            self.count("rejected_connections")
            self.warn(
                "rejected_connections",
                "Local API has {limit} connections open; rejecting another",
                limit=self.max_connections,
            )
            rejecting = _RejectProtocol()
            rejecting.factory = self
            return rejecting
        return super().buildProtocol(addr)

    def connection_opened(self, protocol: LocalAPIProtocol) -> None:
        """
        Record an open connection.
        """
        self.connections.add(protocol)

    def connection_closed(self, protocol: LocalAPIProtocol) -> None:
        """
        Forget a closed connection.
        """
        self.connections.discard(protocol)

    def count(self, name: str) -> None:
        """
        Add one to counter C{name}.
        """
        self.counters[name] += 1

    def warn(self, kind: str, message: str, **fields: Any) -> None:
        """
        Log a warning of C{kind} at most once per L{LOG_INTERVAL} seconds,
        with the number of warnings of that kind left out since the last.
        """
        self._log_limited(self.log.warn, kind, message, fields)

    def info(self, kind: str, message: str, **fields: Any) -> None:
        """
        Log an informational message of C{kind}, rate-limited like L{warn}.
        """
        self._log_limited(self.log.info, kind, message, fields)

    def _log_limited(self, emit: Any, kind: str, message: str, fields: dict) -> None:
        now = self.reactor.seconds()
        last = self._last_logged.get(kind)
        if last is not None and now - last < LOG_INTERVAL:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last_logged[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " ({suppressed} more since the last such message)"
        emit(message, suppressed=suppressed, **fields)

    def respond(self, line: bytes) -> dict[str, Any]:
        """
        Decode a request line and return the response object.
        """
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return {"ok": False, "error": f"invalid JSON request: {error}"}
        if not isinstance(request, dict) or not isinstance(request.get("request"), str):
            return {"ok": False, "error": 'invalid request: expected {"request": NAME}'}

        name = request["request"]
        view = self.views.get(name)
        if view is None:
            known = ", ".join(sorted(self.views))
            return {"ok": False, "error": f"unknown request {name!r}: expected one of {known}"}
        try:
            table = view()
        except Exception as error:
            # A broken view must cost one response, not the daemon.
            self.log.failure("Local API view {name} failed", name=name)
            return {"ok": False, "error": f"request {name!r} failed: {error!r}"}
        return {"ok": True, "request": name, **table.to_json()}


def local_api_service(
    reactor: IReactorUNIX, path: Path, views: Mapping[str, View]
) -> StreamServerEndpointService:
    """
    Create a service that listens on the UNIX socket C{path} (mode 0600)
    and serves C{views}. The socket's directory is created (mode 0755) when
    it starts listening, and a PID lock next to the socket lets a restarted
    daemon replace a stale socket file without taking over a live one.
    """
    endpoint = _DirectoryCreatingEndpoint(reactor, path)
    service = StreamServerEndpointService(endpoint, LocalAPIFactory(views, reactor=reactor))
    # Fail startService (and so the daemon's start) when the socket cannot
    # be bound, as twisted.application.strports.service does.
    service._raiseSynchronously = True
    return service


@implementer(IStreamServerEndpoint)
class _DirectoryCreatingEndpoint:
    """
    A UNIX server endpoint that creates the socket's directory first.
    """

    def __init__(self, reactor: IReactorUNIX, path: Path) -> None:
        self._path = Path(path)
        self._endpoint = UNIXServerEndpoint(reactor, str(path), mode=0o600, wantPID=True)

    def listen(self, factory: Factory):
        """
        Create the directory, then listen.
        """
        try:
            self._path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            return defer.fail()
        return self._endpoint.listen(factory)
