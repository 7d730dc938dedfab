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
from twisted.internet.interfaces import IReactorUNIX, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

__all__ = [
    "MAX_REQUEST_LENGTH",
    "LocalAPIFactory",
    "LocalAPIProtocol",
    "Table",
    "View",
    "local_api_service",
]

# A request is a short JSON object; anything longer is a client error.
MAX_REQUEST_LENGTH = 1024


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


class LocalAPIProtocol(LineOnlyReceiver):
    """
    Serves one roamctl connection: one response line per request line.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_REQUEST_LENGTH
    log = Logger()

    def lineReceived(self, line: bytes) -> None:
        """
        Send the response to one request.
        """
        response = self.factory.respond(line)
        self.sendLine(json.dumps(response, separators=(",", ":")).encode("utf-8"))

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        Reject an oversized request and close the connection.
        """
        self.log.warn(
            "Local API request longer than {limit} bytes; closing the connection",
            limit=self.MAX_LENGTH,
        )
        error = {"ok": False, "error": f"request longer than {self.MAX_LENGTH} bytes"}
        self.transport.write(json.dumps(error).encode("utf-8") + self.delimiter)
        self.transport.loseConnection()


class LocalAPIFactory(Factory):
    """
    Builds L{LocalAPIProtocol}s serving C{views}, a mapping from request
    name to L{View}.
    """

    protocol = LocalAPIProtocol
    log = Logger()

    def __init__(self, views: Mapping[str, View]) -> None:
        self.views = views

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
    service = StreamServerEndpointService(endpoint, LocalAPIFactory(views))
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
