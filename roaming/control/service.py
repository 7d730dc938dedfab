# -*- test-case-name: tests.control.test_wire_service -*-
"""
Control connections of one node, bound to its sans-IO role object.

A L{ControlNode} owns the connections of one AP or SC. It feeds each
identified connection, lost connection, received message and expired
deadline to the role object (L{roaming.control.sc.ServiceController} or
L{roaming.control.ap.AccessPoint}, through a small binding), and carries out
the actions that come back:

  - L{Send} goes to the connection of the named peer. While no connection
    to that peer is identified, up to C{max_pending} messages wait for
    one; older ones are dropped and counted.
  - L{ConnectPeer} opens a reconnecting client connection to the peer.
  - Every other action (tunnels, L3 knowledge, bridge entries, radio) goes
    to the C{data_plane} callable that the daemon supplies.

L{ControlService} is the twistd service: it listens for control connections
(SCs) and keeps the outgoing ones (an AP to its SC, an SC to the primary and
to the SCs that discovery names) up with
L{twisted.application.internet.ClientService}, which reconnects with an
exponential backoff.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address
from typing import Any

import attrs
from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from roaming.control.actions import Action, ConnectPeer, ReportProblem, Send
from roaming.control.clientdb import ClientDatabase
from roaming.control.commands import NodeRole
from roaming.control.messages import Message
from roaming.control.protocol import ConnectionCounters, ConnectionSettings, ControlProtocol
from roaming.control.tls import (
    ClientTLS,
    NodeCredentials,
    ServerTLS,
    TLSCounters,
    client_endpoint,
    load_credentials,
)

__all__ = [
    "CONTROL_PORT",
    "AccessPointBinding",
    "ControlNode",
    "ControlService",
    "RoleBinding",
    "ServiceControllerBinding",
]

#: TCP port of the control service.
# NOTE: a project choice, not an IANA assignment; configurable per node.
CONTROL_PORT = 7443

#: Messages kept for a peer that has no identified connection yet.
DEFAULT_MAX_PENDING = 10_000

#: Client database writes after which the node commits at once instead of
#: at the end of the reactor turn. Under load one turn reads from every
#: ready connection and can carry tens of thousands of messages, whose
#: answers would all wait for its end.
DEFAULT_MAX_UNCOMMITTED = 100


class RoleBinding:
    """
    The calls a L{ControlNode} makes on a role object, each returning the
    actions to carry out.
    """

    role: NodeRole
    #: The role object's client database, whose commits the node batches.
    database: ClientDatabase | None = None

    def start(self, now: float) -> list[Action]:
        return []

    def peer_connected(self, peer: IPv4Address, now: float) -> list[Action]:
        return []

    def peer_lost(self, peer: IPv4Address, now: float) -> list[Action]:
        return []

    def receive(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        return None

    def expire(self, now: float) -> list[Action]:
        return []


class ServiceControllerBinding(RoleBinding):
    """
    The binding for a L{roaming.control.sc.ServiceController}.
    """

    role = NodeRole.SC

    def __init__(self, controller) -> None:
        self.controller = controller
        self.address = controller.address
        self.database = controller.db

    def start(self, now: float) -> list[Action]:
        return self.controller.start(now)

    def peer_connected(self, peer: IPv4Address, now: float) -> list[Action]:
        return self.controller.peer_connected(peer, now)

    def peer_lost(self, peer: IPv4Address, now: float) -> list[Action]:
        return self.controller.peer_lost(peer, now)

    def receive(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        return self.controller.receive(peer, message, now)

    def next_deadline(self) -> float | None:
        return self.controller.next_deadline()

    def expire(self, now: float) -> list[Action]:
        return self.controller.expire(now)


class AccessPointBinding(RoleBinding):
    """
    The binding for a L{roaming.control.ap.AccessPoint}: only the
    connection to its SC matters.
    """

    role = NodeRole.AP

    def __init__(self, access_point) -> None:
        self.access_point = access_point
        self.address = access_point.address

    def peer_connected(self, peer: IPv4Address, now: float) -> list[Action]:
        if peer != self.access_point.controller:
            return []
        return self.access_point.controller_connected(now)

    def peer_lost(self, peer: IPv4Address, now: float) -> list[Action]:
        if peer != self.access_point.controller:
            return []
        return self.access_point.controller_lost(now)

    def receive(self, peer: IPv4Address, message: Message, now: float) -> list[Action]:
        return self.access_point.receive(peer, message, now)


@attrs.define
class NodeCounters:
    """
    Event counts of a node, besides the per-connection ones.
    """

    #: Messages dropped because C{max_pending} messages already waited for
    #: a connection to the same peer.
    pending_dropped: int = 0
    #: Actions passed to the data plane.
    data_plane_actions: int = 0


class ControlNode:
    """
    The connections of one node and the role object they feed.

    @param binding: the role object's binding.
    @param clock: an L{IReactorTime} provider; C{now} for the role object is
        C{clock.seconds()}.
    @param data_plane: called with every action that is not a L{Send} or a
        L{ConnectPeer}.
    @param connect_peer: called with the address of each peer in a
        L{ConnectPeer} action.

    The node switches the binding's client database to batched commits: the
    changes of one reactor turn are committed together by a C{callLater(0)}
    call, or at once when C{max_uncommitted} writes wait. The answer to each
    message waits for that commit (see L{commit_barrier}).
    """

    log = Logger(namespace="roaming.control.service")

    def __init__(
        self,
        binding: RoleBinding,
        *,
        clock: Any,
        data_plane: Callable[[Action], None],
        connect_peer: Callable[[IPv4Address], None] | None = None,
        settings: ConnectionSettings | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_uncommitted: int = DEFAULT_MAX_UNCOMMITTED,
    ) -> None:
        self.binding = binding
        self.max_uncommitted = max_uncommitted
        self.address: IPv4Address = binding.address
        self.role = binding.role
        self.clock = clock
        self.settings = settings if settings is not None else ConnectionSettings()
        self.counters = ConnectionCounters()
        self.node_counters = NodeCounters()
        self.data_plane = data_plane
        self.connect_peer = connect_peer
        self.max_pending = max_pending
        #: Identified connections by peer, oldest first.
        self.connections: dict[IPv4Address, list[ControlProtocol]] = {}
        self._pending: dict[IPv4Address, collections.deque[Message]] = {}
        self._deadline_call = None
        self.database = binding.database
        if self.database is not None:
            self.database.batched = True
        self._flush_call = None
        self._flush_waiters: list[Deferred] = []
        #: The last message logged for each problem key of L{ReportProblem}.
        self.problems: dict[str, str] = {}

    # Inputs.

    def start(self) -> None:
        """
        Start the role object (the primary SC registers with itself).
        """
        self._run(lambda now: self.binding.start(now))

    def stop(self) -> None:
        """
        Cancel the deadline timer and close every connection.
        """
        if self._deadline_call is not None and self._deadline_call.active():
            self._deadline_call.cancel()
        self._deadline_call = None
        self.flush()
        for connections in list(self.connections.values()):
            for connection in list(connections):
                connection.close()

    def run(self, event: Callable[[float], list[Action]]) -> None:
        """
        Call C{event(now)} and carry out the actions it returns; the daemon
        uses this for radio and bridge events, such as
        C{node.run(lambda now: ap.station_associated(mac, now))}.
        """
        self._run(event)

    def connection(self, peer: IPv4Address) -> ControlProtocol | None:
        """
        Return the newest identified connection to C{peer}, or C{None}.
        """
        connections = self.connections.get(peer)
        return connections[-1] if connections else None

    # ControlNode interface of roaming.control.protocol.

    def connection_identified(self, connection: ControlProtocol) -> None:
        peer = connection.peer
        assert peer is not None
        connections = self.connections.setdefault(peer, [])
        first = not connections
        connections.append(connection)
        self.log.info(
            "Control connection to {role} {peer} identified ({direction})",
            role=connection.peer_role,
            peer=peer,
            direction="outgoing" if connection.outgoing else "incoming",
        )
        if first:
            self._run_guarded("peer_connected", peer, self.binding.peer_connected)
        self._flush_pending(peer)

    def message_received(self, connection: ControlProtocol, message: Message) -> None:
        peer = connection.peer
        assert peer is not None
        self._run(lambda now: self.binding.receive(peer, message, now))

    def connection_lost(self, connection: ControlProtocol, reason: Failure) -> None:
        peer = connection.peer
        connections = self.connections.get(peer, [])
        if connection in connections:
            connections.remove(connection)
        self.log.info(
            "Control connection to {peer} lost: {error}",
            peer=peer,
            error=reason.getErrorMessage(),
        )
        if not connections:
            self.connections.pop(peer, None)
            self._run_guarded("peer_lost", peer, self.binding.peer_lost)

    # Actions.

    def _run_guarded(
        self,
        event: str,
        peer: IPv4Address,
        handler: Callable[[IPv4Address, float], list[Action]],
    ) -> None:
        # A connection event has no peer to answer, so a failure is logged
        # here instead of closing the connection.
        try:
            self._run(lambda now: handler(peer, now))
        except Exception:
            self.log.failure("Role object failed on {event} for {peer}", event=event, peer=peer)

    def _run(self, event: Callable[[float], list[Action]]) -> None:
        try:
            actions = event(self.clock.seconds())
            self.execute(actions)
        finally:
            if self.database is not None and self.database.uncommitted >= self.max_uncommitted:
                self.flush()
            else:
                self._schedule_flush()
        self._schedule_deadline()

    # Client database commits.

    def commit_barrier(self) -> Deferred | None:
        """
        Return a Deferred that fires after the next commit of the client
        database, or C{None} if no change waits for one.
        """
        if self.database is None or not (self.database.uncommitted or self._flush_waiters):
            return None
        waiter: Deferred = Deferred()
        self._flush_waiters.append(waiter)
        self._schedule_flush()
        return waiter

    def _schedule_flush(self) -> None:
        if self.database is None or self._flush_call is not None:
            return
        if self.database.uncommitted or self._flush_waiters:
            self._flush_call = self.clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Commit the client database's waiting changes, then fire the
        Deferreds of L{commit_barrier}; a failed commit fails them, so the
        peers get an error answer instead of an acknowledgement.
        """
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        if self.database is None:
            return
        waiters, self._flush_waiters = self._flush_waiters, []
        try:
            self.database.flush()
        except Exception:
            failure = Failure()
            self.log.failure(
                "Committing the client database {path} failed; {count} answers fail",
                failure,
                path=self.database.path,
                count=len(waiters),
            )
            for waiter in waiters:
                waiter.errback(failure)
            return
        for waiter in waiters:
            waiter.callback(None)

    def execute(self, actions: Iterable[Action]) -> None:
        """
        Carry out C{actions} in order.
        """
        for action in actions:
            if isinstance(action, Send):
                self.send(action.peer, action.message)
            elif isinstance(action, ConnectPeer):
                if self.connect_peer is not None and self.connection(action.peer) is None:
                    self.connect_peer(action.peer)
            elif isinstance(action, ReportProblem):
                self._report(action)
            else:
                self.node_counters.data_plane_actions += 1
                self.data_plane(action)

    def _report(self, problem: ReportProblem) -> None:
        # The role object repeats a problem on every event that meets it;
        # log each key again only when its message changes.
        if self.problems.get(problem.key) == problem.message:
            return
        self.problems[problem.key] = problem.message
        self.log.error(
            "{address}: {problem}", address=self.address, problem=problem.message, key=problem.key
        )

    def send(self, peer: IPv4Address, message: Message) -> Deferred | None:
        """
        Send C{message} to C{peer}, or keep it until a connection to C{peer}
        is identified.

        @return: the L{ControlProtocol.send} Deferred, or C{None} if the
            message waits.
        """
        connection = self.connection(peer)
        if connection is not None:
            deferred = connection.send(message)
            deferred.addErrback(lambda _: None)
            return deferred
        pending = self._pending.setdefault(peer, collections.deque())
        if len(pending) >= self.max_pending:
            pending.popleft()
            self.node_counters.pending_dropped += 1
            if self.node_counters.pending_dropped % 1000 == 1:
                self.log.warn(
                    "No control connection to {peer}: dropped the oldest waiting message"
                    " ({dropped} dropped so far)",
                    peer=peer,
                    dropped=self.node_counters.pending_dropped,
                )
        pending.append(message)
        return None

    def _flush_pending(self, peer: IPv4Address) -> None:
        pending = self._pending.pop(peer, None)
        while pending:
            self.send(peer, pending.popleft())

    def _schedule_deadline(self) -> None:
        deadline = self.binding.next_deadline()
        call = self._deadline_call
        if deadline is None:
            if call is not None and call.active():
                call.cancel()
            self._deadline_call = None
            return
        delay = max(0.0, deadline - self.clock.seconds())
        if call is not None and call.active():
            call.reset(delay)
        else:
            self._deadline_call = self.clock.callLater(delay, self._deadline_reached)

    def _deadline_reached(self) -> None:
        self._deadline_call = None
        self._run(lambda now: self.binding.expire(now))

    # Protocol factories.

    def server_factory(self) -> Factory:
        """
        Return a factory of protocols for accepted connections.
        """
        factory = Factory()
        factory.buildProtocol = lambda address: ControlProtocol(self)
        return factory

    def client_factory(self, peer: IPv4Address) -> Factory:
        """
        Return a factory of protocols for connections dialled to C{peer}.
        """
        factory = Factory()
        factory.buildProtocol = lambda address: ControlProtocol(self, expected_peer=peer)
        return factory


class ControlService(MultiService):
    """
    The control plane service of one node: a TLS listener (for an SC) and a
    reconnecting client connection to every peer it dials.

    @param node: the node whose connections these are.
    @param credentials: this node's TLS credentials.
    @param listen_endpoint: a server endpoint factory taking the
        L{ServerTLS}, or C{None} for a node that accepts no connections
        (an AP).
    @param endpoint_for: returns the client endpoint for a peer address;
        by default a TLS endpoint to C{peer}:C{port} that verifies the peer's
        certificate names C{peer}.
    @param check_client_address: whether accepted clients' certificates
        must name their source address (see L{ServerTLS}).
    @param bind_address: the local address of outgoing connections.
    @param initial_delay: first reconnection delay in seconds.
    @param max_delay: maximum reconnection delay in seconds.
    @param retry_policy: the delay before reconnection attempt N; replaces
        the default exponential backoff with jitter built from
        C{initial_delay} and C{max_delay}.
    """

    log = Logger(namespace="roaming.control.service")

    def __init__(
        self,
        node: ControlNode,
        credentials: NodeCredentials,
        *,
        reactor: Any,
        port: int = CONTROL_PORT,
        listen_endpoint: Callable[[ServerTLS], Any] | None = None,
        endpoint_for: Callable[[IPv4Address], Any] | None = None,
        check_client_address: bool = True,
        bind_address: str | None = None,
        initial_delay: float = 1.0,
        max_delay: float = 30.0,
        retry_policy: Callable[[int], float] | None = None,
    ) -> None:
        super().__init__()
        self.node = node
        self.credentials = credentials
        self.reactor = reactor
        self.port = port
        #: Peers rejected by the TLS verify callback, on accepted and dialled
        #: connections alike.
        self.tls_counters = TLSCounters()
        self.server_tls = ServerTLS(
            credentials, check_client_address=check_client_address, counters=self.tls_counters
        )
        self.bind_address = bind_address
        self._listen_endpoint = listen_endpoint
        self._endpoint_for = endpoint_for if endpoint_for is not None else self._tls_endpoint
        if retry_policy is None:
            retry_policy = backoffPolicy(initialDelay=initial_delay, maxDelay=max_delay)
        self._retry_policy = retry_policy
        #: Fires with the listening port once listening, or fails.
        self.listening: Deferred | None = None
        self._port = None
        self.clients: dict[IPv4Address, ClientService] = {}
        node.connect_peer = self.connect

    @classmethod
    def from_files(
        cls,
        node: ControlNode,
        certificate: str,
        key: str,
        ca: str,
        *,
        now: datetime.datetime | None = None,
        **options: Any,
    ) -> ControlService:
        """
        Build the service from credential files, checked first.

        @raise CredentialsError: naming the file, if a file is missing or
            unusable; a daemon should exit with this message rather than
            run without verified TLS.
        """
        if now is None:
            now = datetime.datetime.now(datetime.UTC)
        credentials = load_credentials(certificate, key, ca, now=now)
        return cls(node, credentials, **options)

    def client_tls(self, peer: IPv4Address) -> ClientTLS:
        """
        Return the TLS connection creator for dialling C{peer}, counting its
        rejections in L{tls_counters}.
        """
        return ClientTLS(self.credentials, str(peer), counters=self.tls_counters)

    def _tls_endpoint(self, peer: IPv4Address):
        return client_endpoint(
            self.reactor,
            self.client_tls(peer),
            str(peer),
            self.port,
            bind_address=self.bind_address,
        )

    def connect(self, peer: IPv4Address) -> ClientService:
        """
        Keep a connection to C{peer} up from now on.
        """
        existing = self.clients.get(peer)
        if existing is not None:
            return existing
        service = ClientService(
            self._endpoint_for(peer),
            self.node.client_factory(peer),
            retryPolicy=self._retry_policy,
            clock=self.node.clock,
        )
        service.setName(f"control-{peer}")
        self.clients[peer] = service
        service.setServiceParent(self)
        self.log.info("Connecting to control peer {peer}", peer=peer)
        return service

    def disconnect(self, peer: IPv4Address) -> Deferred | None:
        """
        Stop keeping a connection to C{peer}.
        """
        service = self.clients.pop(peer, None)
        if service is None:
            return None
        return service.disownServiceParent()

    def startService(self) -> None:
        super().startService()
        if self._listen_endpoint is not None:
            endpoint = self._listen_endpoint(self.server_tls)
            self.listening = endpoint.listen(self.node.server_factory())
            self.listening.addCallbacks(self._listening_started, self._listen_failed)
        self.node.start()

    def _listening_started(self, port) -> Any:
        self._port = port
        self.log.info("Control service listening on {address}", address=port.getHost())
        return port

    def _listen_failed(self, failure: Failure) -> Failure:
        self.log.failure("Control service failed to listen", failure)
        return failure

    def stopService(self) -> Deferred:
        self.node.stop()
        stopped = super().stopService()
        port, self._port = self._port, None
        if port is not None:
            return stopped.addCallback(lambda _: port.stopListening())
        return stopped
