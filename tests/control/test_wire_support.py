# -*- test-case-name: tests.control.test_wire_service -*-
"""
Test helpers for the control plane's wire tests: an in-memory network of
L{ControlNode}s joined by real TLS (L{TLSMemoryBIOFactory}) over
L{twisted.test.iosim} pumps, driven by one L{task.Clock}.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import attrs
from twisted.application.internet import backoffPolicy
from twisted.internet.address import IPv4Address as TwistedIPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim

from roaming.control.actions import Action
from roaming.control.ap import AccessPoint
from roaming.control.clientdb import ClientDatabase
from roaming.control.protocol import ConnectionSettings
from roaming.control.sc import ServiceController
from roaming.control.service import (
    AccessPointBinding,
    ControlNode,
    ControlService,
    ServiceControllerBinding,
)
from roaming.control.tls import ClientTLS, NodeCredentials, ServerTLS
from tests.control.test_tls_support import TestAuthority

__all__ = ["MemoryNetwork", "NodeHandle", "ip", "net"]

CONTROL_PORT = 7443


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


@attrs.define
class NodeHandle:
    """
    One node of the memory network and what it did.
    """

    node: ControlNode
    service: ControlService
    credentials: NodeCredentials
    role_object: object
    data_plane: list[Action] = attrs.field(factory=list)
    #: Every message the role object received, as (peer, message).
    received: list[tuple[IPv4Address, object]] = attrs.field(factory=list)

    def data_plane_of(self, kind: type) -> list[Action]:
        return [action for action in self.data_plane if isinstance(action, kind)]


class _MemoryEndpoint:
    """
    A client endpoint that connects through TLS to a node of the network.
    """

    def __init__(self, network: MemoryNetwork, source: IPv4Address, peer: IPv4Address, tls):
        self.network = network
        self.source = source
        self.peer = peer
        self.tls = tls

    def connect(self, factory) -> Deferred:
        listener = self.network.listeners.get(self.peer)
        if listener is None or self.peer in self.network.unreachable:
            return fail(ConnectionRefusedError(str(self.peer)))
        server_tls, server_factory = listener
        return succeed(
            self.network.join(self.source, self.peer, factory, server_factory, self.tls, server_tls)
        )


class MemoryNetwork:
    """
    Nodes joined by TLS over iosim pumps, sharing one clock.
    """

    __test__ = False

    def __init__(self, authority: TestAuthority | None = None, settings=None) -> None:
        self.clock = Clock()
        self.authority = authority if authority is not None else TestAuthority.create()
        self.settings = settings if settings is not None else ConnectionSettings()
        self.listeners: dict[IPv4Address, tuple[ServerTLS, object]] = {}
        self.unreachable: set[IPv4Address] = set()
        self.pumps: list[iosim.IOPump] = []
        self.nodes: dict[IPv4Address, NodeHandle] = {}
        self.connections: list[tuple[IPv4Address, IPv4Address, object, object, iosim.IOPump]] = []

    def join(self, source, peer, client_factory, server_factory, client_tls, server_tls):
        """
        Connect C{source} to C{peer}; return the client's application
        protocol.
        """
        server_host = TwistedIPv4Address("TCP", str(peer), CONTROL_PORT)
        client_host = TwistedIPv4Address("TCP", str(source), 40000 + len(self.pumps))
        server_wrapper = TLSMemoryBIOFactory(server_tls, False, server_factory, clock=self.clock)
        client_wrapper = TLSMemoryBIOFactory(client_tls, True, client_factory, clock=self.clock)
        server_protocol = server_wrapper.buildProtocol(client_host)
        client_protocol = client_wrapper.buildProtocol(server_host)
        server_transport = iosim.FakeTransport(
            server_protocol, True, hostAddress=server_host, peerAddress=client_host
        )
        client_transport = iosim.FakeTransport(
            client_protocol, False, hostAddress=client_host, peerAddress=server_host
        )
        pump = iosim.connect(
            server_protocol, server_transport, client_protocol, client_transport,
            greet=False, clock=self.clock,
        )  # fmt: skip
        self.pumps.append(pump)
        self.connections.append((source, peer, client_transport, server_transport, pump))
        return client_protocol.wrappedProtocol

    def add_sc(
        self,
        address: str,
        *,
        primary: str,
        subnets=(),
        database: ClientDatabase | None = None,
        listen: bool = True,
        **controller_options,
    ) -> NodeHandle:
        controller = ServiceController(
            ip(address),
            database if database is not None else ClientDatabase(":memory:"),
            primary=ip(primary),
            subnets=[net(subnet) for subnet in subnets],
            **controller_options,
        )
        handle = self._add(ServiceControllerBinding(controller), controller, listen=listen)
        if ip(primary) != ip(address):
            handle.service.connect(ip(primary))
        return handle

    def add_ap(self, address: str, *, controller: str, subnets, vlans=()) -> NodeHandle:
        access_point = AccessPoint(
            ip(address), ip(controller), [net(subnet) for subnet in subnets], vlans=vlans
        )
        handle = self._add(AccessPointBinding(access_point), access_point, listen=False)
        handle.service.connect(ip(controller))
        return handle

    def _add(self, binding, role_object, *, listen: bool) -> NodeHandle:
        address = binding.address
        credentials = self.authority.node([str(address)], name=f"node-{address}")
        data_plane: list[Action] = []
        node = ControlNode(
            binding, clock=self.clock, data_plane=data_plane.append, settings=self.settings
        )

        def endpoint_for(peer: IPv4Address) -> _MemoryEndpoint:
            return _MemoryEndpoint(self, address, peer, ClientTLS(credentials, str(peer)))

        service = ControlService(
            node, credentials, reactor=None, endpoint_for=endpoint_for,
            listen_endpoint=None, retry_policy=backoffPolicy(1.0, 8.0, jitter=lambda: 0.0),
        )  # fmt: skip
        if listen:
            self.listeners[address] = (service.server_tls, node.server_factory())
        handle = NodeHandle(node, service, credentials, role_object, data_plane)
        receive = binding.receive

        def recording_receive(peer, message, now):
            handle.received.append((peer, message))
            return receive(peer, message, now)

        binding.receive = recording_receive
        self.nodes[address] = handle
        return handle

    def start(self) -> None:
        """
        Start every node's service, then deliver everything.
        """
        for handle in self.nodes.values():
            handle.service.startService()
        self.flush()

    def flush(self, rounds: int = 200) -> None:
        """
        Pump every connection until nothing moves (at most C{rounds} passes).
        """
        for _ in range(rounds):
            self.clock.advance(0)
            moved = False
            for pump in list(self.pumps):
                if pump.pump(advanceClock=False):
                    moved = True
            if not moved:
                return
        raise AssertionError(f"the memory network did not settle in {rounds} passes")

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """
        Advance the clock in steps, delivering data after each.
        """
        remaining = seconds
        while remaining > 0:
            delta = min(step, remaining)
            self.clock.advance(delta)
            self.flush()
            remaining -= delta

    def received_types(self, address: str) -> list[tuple[str, str]]:
        """
        Return (sender, message class name) for every message a node's role
        object received.
        """
        received = self.nodes[ip(address)].received
        return [(str(peer), type(message).__name__) for peer, message in received]

    def drop_connections(self, source: str, peer: str) -> None:
        """
        Abort every open connection between C{source} and C{peer}.
        """
        for client_ip, server_ip, client_transport, _, _ in self.connections:
            if (client_ip, server_ip) == (ip(source), ip(peer)):
                client_transport.abortConnection()
        self.flush()

    def silence(self, source: str, peer: str, side: str) -> None:
        """
        Make one end of every connection between C{source} and C{peer} stop
        sending: C{side} is C{"client"} or C{"server"}.
        """
        for client_ip, server_ip, client_transport, server_transport, _ in self.connections:
            if (client_ip, server_ip) == (ip(source), ip(peer)):
                transport = client_transport if side == "client" else server_transport
                transport.write = lambda data: None
