# -*- test-case-name: tests.daemons.test_services -*-
"""
The control plane of a daemon: AMP connections over mutual TLS, driving a
sans-IO role object (L{roaming.control.sc.ServiceController} or
L{roaming.control.ap.AccessPoint}).

L{ControlRuntime} is the L{roaming.control.protocol.ControlNode} of the
daemon's connections. It listens for peers (SC only), dials peers with a
reconnecting L{ClientService} each, feeds every connection event and
message to the role object with the reactor's time, and carries out the
actions the role returns: bridge and tunnel actions through
L{roaming.tap.node.NodeDatapath}, messages over the connections, and the
LAN-side actions (layer 2 update, IAPP ADD-notify) through callbacks of
the AP daemon.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import Any

from twisted.application.internet import (
    ClientService,
    StreamServerEndpointService,
    backoffPolicy,
)
from twisted.application.service import MultiService
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from roaming.control import actions
from roaming.control.commands import NodeRole
from roaming.control.messages import ControlError, Message
from roaming.control.protocol import ConnectionCounters, ConnectionSettings, ControlProtocol
from roaming.control.tls import (
    ClientTLS,
    NodeCredentials,
    ServerTLS,
    client_endpoint,
    server_endpoint,
)
from roaming.tap.node import NodeDatapath
from roaming.tap.stages import StageLog

__all__ = ["ControlRuntime", "PeerState"]


class PeerState:
    """
    State of one control peer for roamctl: its role, whether this side
    dialled it, and when the connection came up.
    """

    def __init__(self, address: ipaddress.IPv4Address, outgoing: bool) -> None:
        self.address = address
        self.outgoing = outgoing
        self.role: str | None = None
        self.connection: ControlProtocol | None = None
        self.since: float | None = None
        self.connects = 0


class _ServerFactory(Factory):
    def __init__(self, runtime: ControlRuntime) -> None:
        self.runtime = runtime

    def buildProtocol(self, address: Any) -> ControlProtocol:
        protocol = ControlProtocol(self.runtime)
        protocol.factory = self
        return protocol


class _ClientFactory(Factory):
    def __init__(self, runtime: ControlRuntime, peer: ipaddress.IPv4Address) -> None:
        self.runtime = runtime
        self.peer = peer

    def buildProtocol(self, address: Any) -> ControlProtocol:
        protocol = ControlProtocol(self.runtime, expected_peer=self.peer)
        protocol.factory = self
        return protocol


class ControlRuntime(MultiService):
    """
    The control connections of one node and the role object behind them.

    @param role_object: the sans-IO role; it must offer C{receive(peer,
        message, now)}, C{next_deadline()} and C{expire(now)}.
    @param on_identified: called with C{(peer, role)} when a connection is
        identified; returns the role's actions.
    @param on_lost: called with C{(peer)} when an identified connection
        closes; returns the role's actions.
    @param lan_actions: carries out actions that are neither bridge nor
        connection actions (layer 2 update, IAPP, station removal); returns
        whether it handled the action.
    """

    log = Logger()

    def __init__(
        self,
        *,
        address: ipaddress.IPv4Address,
        role: NodeRole,
        role_object: Any,
        credentials: NodeCredentials,
        port: int,
        settings: ConnectionSettings,
        reconnect_initial: float,
        reconnect_max: float,
        reactor: Any,
        datapath: NodeDatapath,
        stages: StageLog,
        on_identified: Callable[[ipaddress.IPv4Address, NodeRole], list],
        on_lost: Callable[[ipaddress.IPv4Address], list],
        lan_actions: Callable[[actions.Action], bool] = lambda action: False,
        listen: bool,
    ) -> None:
        super().__init__()
        self.address = address
        self.role = role
        self.role_object = role_object
        self.clock = reactor
        self.settings = settings
        self.counters = ConnectionCounters()
        self.credentials = credentials
        self.port = port
        self.datapath = datapath
        self.stages = stages
        self.peers: dict[ipaddress.IPv4Address, PeerState] = {}
        self.messages_dropped = 0
        self.action_errors = 0
        self._reactor = reactor
        self._on_identified = on_identified
        self._on_lost = on_lost
        self._lan_actions = lan_actions
        self._listen = listen
        # Twisted's default jitter adds up to 1 s to every attempt, which
        # would swamp a sub-second initial delay; scale it to that delay.
        self._reconnect = backoffPolicy(
            initialDelay=reconnect_initial,
            maxDelay=reconnect_max,
            factor=2.0,
            jitter=lambda: random.random() * reconnect_initial,
        )
        self._timer: Any = None
        self._server: StreamServerEndpointService | None = None
        # Set by stopService: connections that close while the daemon stops
        # change nothing, because the data path is going away too.
        self._stopping = False

    # Services

    def startService(self) -> None:
        """
        Listen for peers (when this node accepts connections) and start the
        connections added so far.

        @raise Exception: the control server cannot listen.
        """
        if self._listen and self._server is None:
            endpoint = server_endpoint(
                self._reactor,
                ServerTLS(self.credentials, log=self.log),
                self.port,
                interface=str(self.address),
            )
            self._server = StreamServerEndpointService(endpoint, _ServerFactory(self))
            # Fail the daemon's start when the port is taken, as
            # twisted.application.strports.service does.
            self._server._raiseSynchronously = True
            self._server.setName("control-server")
            self._server.setServiceParent(self)
            self.log.info(
                "Control server listening on {address}:{port}",
                address=str(self.address),
                port=self.port,
            )
        super().startService()

    def stopService(self) -> Any:
        """
        Stop listening, close every connection and cancel the timer.
        """
        self._stopping = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        # Abort rather than close: a TLS close waits for the peer, and the
        # peer may be stopping too. The peer gets the reset at once.
        for peer in self.peers.values():
            if peer.connection is not None and peer.connection.transport is not None:
                peer.connection.transport.abortConnection()
        return super().stopService()

    def connect(self, peer: ipaddress.IPv4Address) -> None:
        """
        Keep a connection to C{peer} open, reconnecting with backoff.
        """
        state = self.peers.get(peer)
        if state is not None and state.outgoing:
            return
        self.peers[peer] = PeerState(peer, outgoing=True)
        endpoint = client_endpoint(
            self._reactor,
            ClientTLS(self.credentials, str(peer), log=self.log),
            str(peer),
            self.port,
            timeout=self.settings.identify_timeout,
        )
        service = ClientService(
            endpoint, _ClientFactory(self, peer), retryPolicy=self._reconnect, clock=self._reactor
        )
        service.setName(f"control:{peer}")
        service.setServiceParent(self)
        self.log.info("Connecting to control peer {peer}", peer=str(peer))

    # ControlNode

    def connection_identified(self, connection: ControlProtocol) -> None:
        """
        Record the connection and tell the role object.
        """
        peer = connection.peer
        state = self.peers.get(peer)
        if state is None:
            state = self.peers[peer] = PeerState(peer, outgoing=False)
        old = state.connection
        if old is not None and old is not connection and old.transport is not None:
            self.log.info("Replacing the control connection to {peer}", peer=str(peer))
            old.transport.loseConnection()
        state.connection = connection
        state.role = str(connection.peer_role)
        state.since = self._reactor.seconds()
        state.connects += 1
        self.log.info(
            "Control peer {peer} ({role}) identified",
            peer=str(peer),
            role=str(connection.peer_role),
        )
        self.run(self._role_call(self._on_identified, peer, connection.peer_role))

    def message_received(self, connection: ControlProtocol, message: Message) -> None:
        """
        Hand a message to the role object and carry out its actions.

        @raise ControlError: from the role object; the protocol sends the
            peer an error response.
        """
        self._stage("message-received", connection.peer, message)
        now = self._reactor.seconds()
        self.run(self.role_object.receive(connection.peer, message, now))

    def connection_lost(self, connection: ControlProtocol, reason: Failure) -> None:
        """
        Forget the connection and tell the role object.
        """
        peer = connection.peer
        state = self.peers.get(peer)
        if state is None or state.connection is not connection:
            return
        state.connection = None
        state.since = None
        if not state.outgoing:
            del self.peers[peer]
        self.log.info(
            "Control peer {peer} lost: {error}", peer=str(peer), error=reason.getErrorMessage()
        )
        if self._stopping:
            return
        self.run(self._role_call(self._on_lost, peer))

    def _role_call(self, call: Callable[..., list], *arguments: Any) -> list:
        """
        Return the actions of a role event, or none when the role object
        raised: a role error must not close the connection that reported it.
        """
        try:
            return call(*arguments)
        except Exception:
            self.action_errors += 1
            self.log.failure("Control role failed on {call}", call=getattr(call, "__name__", call))
            return []

    # Actions

    def run(self, to_do: list[actions.Action]) -> None:
        """
        Carry out C{to_do} in order, then rearm the role's timer. A failing
        action is logged and counted, and the others still run.
        """
        for action in to_do:
            try:
                self._carry_out(action)
            except Exception:
                self.action_errors += 1
                self.log.failure("Control action {action!r} failed", action=action)
        self._arm_timer()

    def _carry_out(self, action: actions.Action) -> None:
        if isinstance(action, actions.Send):
            self.send(action.peer, action.message)
        elif isinstance(action, actions.ConnectPeer):
            self.connect(action.peer)
        elif not self.datapath.apply(action) and not self._lan_actions(action):
            self.log.warn("No handler for control action {action!r}; ignored", action=action)

    def send(self, peer: ipaddress.IPv4Address, message: Message) -> None:
        """
        Send C{message} to C{peer}, or count it as dropped when there is no
        identified connection to C{peer}.
        """
        state = self.peers.get(peer)
        if state is None or state.connection is None:
            self.messages_dropped += 1
            self.log.warn(
                "No control connection to {peer}; dropped {message}",
                peer=str(peer),
                message=type(message).__name__,
            )
            return
        self._stage("message-sent", peer, message)
        state.connection.post(message)

    def _stage(self, stage: str, peer: Any, message: Message) -> None:
        mac = getattr(message, "mac", None)
        if isinstance(mac, bytes):
            self.stages.emit(stage, mac, message=type(message).__name__, peer=str(peer))

    def _arm_timer(self) -> None:
        # The AP role has no timers of its own.
        next_deadline = getattr(self.role_object, "next_deadline", None)
        deadline = next_deadline() if next_deadline is not None else None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if deadline is None or not self.running:
            return
        delay = max(0.0, deadline - self._reactor.seconds())
        self._timer = self._reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        try:
            to_do = self.role_object.expire(self._reactor.seconds())
        except ControlError:
            self.log.failure("Control timers failed")
            to_do = []
        self.run(to_do)
