# -*- test-case-name: tests.daemons.test_control -*-
"""
The control plane of a daemon: L{roaming.control.service}, bound to the
daemon's data path, roam stage log and operation views.

L{roaming.control.service.ControlService} keeps the node's AMP connections
over mutual TLS and feeds a role binding. L{ControlRuntime} adds what a
daemon needs around it:

  - the role's bridge and tunnel actions go to
    L{roaming.tap.node.NodeDatapath}, and the LAN-side ones (layer 2
    update, IAPP) to a callback of the AP daemon; a failing action is
    logged and counted, and the others still run;
  - every control message about a client is a roam stage
    (C{message-sent}, C{message-received});
  - a listening port that cannot be bound fails the daemon's start;
  - stopping aborts the connections instead of closing them, because the
    data path that carries their TLS close goes away right after;
  - L{ControlRuntime.peers} describes each peer for roamctl.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.application.internet import backoffPolicy
from twisted.logger import Logger
from twisted.python.failure import Failure

from roaming.control import actions
from roaming.control.messages import Message
from roaming.control.protocol import ConnectionSettings, ControlProtocol
from roaming.control.service import ControlNode, ControlService, RoleBinding
from roaming.control.tls import NodeCredentials, server_endpoint
from roaming.tap.node import NodeDatapath
from roaming.tap.stages import StageLog

__all__ = ["ControlRuntime", "PeerState", "StagedControlNode"]


@attrs.frozen
class PeerState:
    """
    State of one control peer for roamctl: its role, whether this side
    dials it, the identified connection if any, and when it came up.
    """

    address: ipaddress.IPv4Address
    outgoing: bool
    role: str | None
    connection: ControlProtocol | None
    since: float | None
    connects: int


class StagedControlNode(ControlNode):
    """
    A L{ControlNode} that logs every message about a client as a roam stage
    and remembers when each peer's connection came up.
    """

    def __init__(self, binding: RoleBinding, *, stages: StageLog, **options: Any) -> None:
        super().__init__(binding, **options)
        self.stages = stages
        #: Time of the last identification, and identification count, by peer.
        self.identified: dict[ipaddress.IPv4Address, tuple[float, int]] = {}

    def connection_identified(self, connection: ControlProtocol) -> None:
        """
        Record the time, then let the node handle the connection.
        """
        _, count = self.identified.get(connection.peer, (0.0, 0))
        self.identified[connection.peer] = (self.clock.seconds(), count + 1)
        super().connection_identified(connection)

    def message_received(self, connection: ControlProtocol, message: Message) -> None:
        """
        Log the message as a roam stage, then hand it to the role.
        """
        self._stage("message-received", connection.peer, message)
        super().message_received(connection, message)

    def send(self, peer: ipaddress.IPv4Address, message: Message) -> Any:
        """
        Log the message as a roam stage, then send or queue it.
        """
        self._stage("message-sent", peer, message)
        return super().send(peer, message)

    def _stage(self, stage: str, peer: Any, message: Message) -> None:
        mac = getattr(message, "mac", None)
        if isinstance(mac, bytes):
            self.stages.emit(stage, mac, message=type(message).__name__, peer=str(peer))


class ControlRuntime(ControlService):
    """
    The control service of one daemon.

    @param binding: the role binding
        (L{roaming.control.service.ServiceControllerBinding} or
        L{roaming.control.service.AccessPointBinding}).
    @param lan_actions: carries out actions that are neither bridge nor
        connection actions (layer 2 update, IAPP, station removal); returns
        whether it handled the action.
    @param listen: whether this node accepts connections (an SC).
    """

    log = Logger()

    def __init__(
        self,
        *,
        address: ipaddress.IPv4Address,
        binding: RoleBinding,
        credentials: NodeCredentials,
        port: int,
        settings: ConnectionSettings,
        reconnect_initial: float,
        reconnect_max: float,
        reactor: Any,
        datapath: NodeDatapath,
        stages: StageLog,
        lan_actions: Callable[[actions.Action], bool] = lambda action: False,
        listen: bool,
    ) -> None:
        node = StagedControlNode(
            binding,
            stages=stages,
            clock=reactor,
            data_plane=self._data_plane,
            settings=settings,
        )
        listen_endpoint = None
        if listen:

            def listen_endpoint(server_tls: Any) -> Any:
                return server_endpoint(reactor, server_tls, port, interface=str(address))

        super().__init__(
            node,
            credentials,
            reactor=reactor,
            port=port,
            listen_endpoint=listen_endpoint,
            bind_address=str(address),
            # Twisted's default jitter adds up to 1 s to every attempt,
            # which would swamp a sub-second initial delay; scale it.
            retry_policy=backoffPolicy(
                initialDelay=reconnect_initial,
                maxDelay=reconnect_max,
                factor=2.0,
                jitter=lambda: random.random() * reconnect_initial,
            ),
        )
        self.address = address
        self.datapath = datapath
        self.action_errors = 0
        self._lan_actions = lan_actions
        # Set by stopService: actions caused by connections that close while
        # the daemon stops change nothing, because the data path goes too.
        self._stopping = False

    # Service

    def startService(self) -> None:
        """
        Start listening (an SC) and the role.

        @raise Exception: the control port cannot be bound.
        """
        super().startService()
        if self.listening is None:
            return
        failures: list[Failure] = []
        self.listening.addErrback(failures.append)
        if failures:
            failures[0].raiseException()

    def stopService(self) -> Any:
        """
        Abort every connection, then stop the client services and the
        listening port.
        """
        self._stopping = True
        for connections in list(self.node.connections.values()):
            for connection in list(connections):
                if connection.transport is not None:
                    connection.transport.abortConnection()
        return super().stopService()

    # Actions

    def run(self, to_do: Iterable[actions.Action]) -> None:
        """
        Carry out actions that a radio or bridge event of the role returned.
        """
        to_do = list(to_do)
        self.node.run(lambda now: to_do)

    def _data_plane(self, action: actions.Action) -> None:
        if self._stopping:
            return
        try:
            if not self.datapath.apply(action) and not self._lan_actions(action):
                self.log.warn("No handler for control action {action!r}; ignored", action=action)
        except Exception:
            self.action_errors += 1
            self.log.failure("Control action {action!r} failed", action=action)

    # Views

    @property
    def counters(self) -> Any:
        """
        The connection counters of every connection of the node.
        """
        return self.node.counters

    @property
    def messages_dropped(self) -> int:
        """
        Messages dropped because too many waited for a connection.
        """
        return self.node.node_counters.pending_dropped

    @property
    def peers(self) -> dict[ipaddress.IPv4Address, PeerState]:
        """
        Describe every peer this node dials or is connected to.
        """
        states = {}
        for address in sorted(set(self.node.connections) | set(self.clients)):
            connection = self.node.connection(address)
            since, count = self.node.identified.get(address, (None, 0))
            states[address] = PeerState(
                address=address,
                outgoing=address in self.clients,
                role=None if connection is None else str(connection.peer_role),
                connection=connection,
                since=since if connection is not None else None,
                connects=count,
            )
        return states
