"""
An in-memory network of SC and AP role objects for the control plane tests.

L{Network} routes every L{Send} action to the addressed role object, in
order, and records each delivered message. Every other action is applied to
a small model of that node's bridge (L{BridgeModel}), so a test can assert
both the messages exchanged and the resulting bridge state.
"""

from __future__ import annotations

from collections import deque
from ipaddress import IPv4Address, IPv4Network

import attrs

from roaming.control.actions import (
    Action,
    AddL3Entry,
    AddStaticEntry,
    ClearSourceEntry,
    ConnectPeer,
    RemoveL3Entry,
    RemoveStaticEntry,
    RemoveStation,
    ReportProblem,
    Send,
    SendIappAddNotify,
    SendLayer2Update,
    SetFloodToPeer,
    SetSourceEntry,
    SetStationVlan,
    TunnelDown,
    TunnelUp,
)
from roaming.control.ap import AccessPoint
from roaming.control.clientdb import ClientDatabase
from roaming.control.messages import Message, parse_mac
from roaming.control.sc import ServiceController

__all__ = ["BridgeModel", "Delivery", "Network", "address", "mac", "network"]


def address(text: str) -> IPv4Address:
    return IPv4Address(text)


def network(text: str) -> IPv4Network:
    return IPv4Network(text)


def mac(text: str) -> bytes:
    return parse_mac(text)


@attrs.frozen
class Delivery:
    """
    One message delivered from C{sender} to C{receiver}.
    """

    sender: IPv4Address
    receiver: IPv4Address
    message: Message


@attrs.define
class BridgeModel:
    """
    The bridge state that a node's actions have asked for.
    """

    tunnels: set[IPv4Address] = attrs.field(factory=set)
    l3: dict[IPv4Network, tuple[IPv4Address, str]] = attrs.field(factory=dict)
    static: dict[bytes, IPv4Address | None] = attrs.field(factory=dict)
    source: dict[bytes, IPv4Address | None] = attrs.field(factory=dict)
    flood_to: set[IPv4Address] = attrs.field(factory=set)
    layer2_updates: list[bytes] = attrs.field(factory=list)
    add_notifies: list[bytes] = attrs.field(factory=list)
    removed_stations: list[bytes] = attrs.field(factory=list)
    connects: list[IPv4Address] = attrs.field(factory=list)
    station_vlans: dict[bytes, int] = attrs.field(factory=dict)
    problems: list[tuple[str, str]] = attrs.field(factory=list)
    #: Every action applied, in order.
    history: list[Action] = attrs.field(factory=list)

    def apply(self, action: Action) -> None:
        self.history.append(action)
        match action:
            case TunnelUp(peer):
                self.tunnels.add(peer)
            case TunnelDown(peer):
                self.tunnels.discard(peer)
            case AddL3Entry(net, peer, match):
                self.l3[net] = (peer, match.value)
            case RemoveL3Entry(net, peer):
                assert self.l3.get(net, (None,))[0] == peer, f"no L3 entry {net} -> {peer}"
                del self.l3[net]
            case AddStaticEntry(client, peer, _):
                self.static[client] = peer
            case RemoveStaticEntry(client, _):
                self.static.pop(client, None)
            case SetSourceEntry(client, peer, _):
                self.source[client] = peer
            case ClearSourceEntry(client, _):
                self.source.pop(client, None)
            case SetFloodToPeer(peer, enabled):
                if enabled:
                    self.flood_to.add(peer)
                else:
                    self.flood_to.discard(peer)
            case SendLayer2Update(client, _):
                self.layer2_updates.append(client)
            case SendIappAddNotify(client):
                self.add_notifies.append(client)
            case RemoveStation(client):
                self.removed_stations.append(client)
            case SetStationVlan(client, vlan_id):
                self.station_vlans[client] = vlan_id
            case ConnectPeer(peer):
                self.connects.append(peer)
            case ReportProblem(key, message):
                self.problems.append((key, message))
            case _:
                raise AssertionError(f"unexpected action {action!r}")


class Network:
    """
    SCs and APs wired together in memory.

    @ivar log: every delivered message, in delivery order.
    @ivar now: the time passed to every input.
    """

    def __init__(self, primary: str = "10.255.0.1") -> None:
        self.primary = address(primary)
        self.nodes: dict[IPv4Address, ServiceController | AccessPoint] = {}
        self.bridges: dict[IPv4Address, BridgeModel] = {}
        self.log: list[Delivery] = []
        self.now = 1000.0
        self._queue: deque[tuple[IPv4Address, Action]] = deque()

    # Building the topology.

    def add_sc(self, addr: str, *subnets: str, **options) -> ServiceController:
        sc_address = address(addr)
        database = options.pop("database", None)
        if database is None:
            database = ClientDatabase(":memory:")
        controller = ServiceController(
            sc_address,
            database,
            primary=self.primary,
            subnets=[network(subnet) for subnet in subnets],
            **options,
        )
        self.nodes[sc_address] = controller
        self.bridges[sc_address] = BridgeModel()
        self.run(sc_address, controller.start(self.now))
        if sc_address != self.primary:
            self.run(sc_address, controller.peer_connected(self.primary, self.now))
            self.run(self.primary, self.nodes[self.primary].peer_connected(sc_address, self.now))
        return controller

    def restart_sc(self, addr: str, database: ClientDatabase) -> ServiceController:
        """
        Replace the SC at C{addr} by a new one on C{database}, as after a
        daemon restart: it registers again and its APs reconnect.
        """
        sc_address = address(addr)
        old = self.sc(addr)
        aps = [node for node, role in self.nodes.items() if isinstance(role, AccessPoint)]
        aps = [ap for ap in aps if self.nodes[ap].controller == sc_address]
        self.run(self.primary, self.nodes[self.primary].peer_lost(sc_address, self.now))
        for ap in aps:
            self.run(ap, self.nodes[ap].controller_lost(self.now))
        del old

        controller = ServiceController(sc_address, database, primary=self.primary)
        self.nodes[sc_address] = controller
        self.bridges[sc_address] = BridgeModel()
        self.run(sc_address, controller.start(self.now))
        self.run(sc_address, controller.peer_connected(self.primary, self.now))
        self.run(self.primary, self.nodes[self.primary].peer_connected(sc_address, self.now))
        for ap in aps:
            self.run(sc_address, controller.peer_connected(ap, self.now))
            self.run(ap, self.nodes[ap].controller_connected(self.now))
        return controller

    def add_ap(self, addr: str, sc: str, *subnets: str) -> AccessPoint:
        ap_address, sc_address = address(addr), address(sc)
        ap = AccessPoint(ap_address, sc_address, [network(subnet) for subnet in subnets])
        self.nodes[ap_address] = ap
        self.bridges[ap_address] = BridgeModel()
        self.run(sc_address, self.nodes[sc_address].peer_connected(ap_address, self.now))
        self.run(ap_address, ap.controller_connected(self.now))
        return ap

    # Running.

    def run(self, origin: IPv4Address, actions: list[Action]) -> None:
        """
        Apply C{actions} produced by C{origin}, delivering every message
        until no message is left in flight.
        """
        for action in actions:
            self._queue.append((origin, action))
        while self._queue:
            node, action = self._queue.popleft()
            if isinstance(action, Send):
                self._deliver(node, action)
            else:
                self.bridges[node].apply(action)

    def _deliver(self, sender: IPv4Address, action: Send) -> None:
        assert action.peer != sender, f"{sender} sent {action.message!r} to itself"
        receiver = self.nodes[action.peer]
        self.log.append(Delivery(sender, action.peer, action.message))
        produced = receiver.receive(sender, action.message, self.now)
        for produced_action in produced:
            self._queue.append((action.peer, produced_action))

    def event(self, node: str, method: str, *args, **kwargs) -> None:
        """
        Feed a local event (a method of the role object) to C{node}.
        """
        node_address = address(node)
        actions = getattr(self.nodes[node_address], method)(*args, self.now, **kwargs)
        self.run(node_address, actions)

    def lose(self, node: str, peer: str) -> None:
        """
        Report to C{node} that its control connection to C{peer} is gone.
        """
        node_address, peer_address = address(node), address(peer)
        role = self.nodes[node_address]
        if isinstance(role, AccessPoint):
            self.run(node_address, role.controller_lost(self.now))
        else:
            self.run(node_address, role.peer_lost(peer_address, self.now))

    # Inspecting.

    def take_log(self) -> list[tuple[str, str, Message]]:
        """
        Return the messages delivered since the last call, as (sender,
        receiver, message) with addresses as text, and clear the log.
        """
        deliveries = [(str(d.sender), str(d.receiver), d.message) for d in self.log]
        self.log.clear()
        return deliveries

    def bridge(self, node: str) -> BridgeModel:
        return self.bridges[address(node)]

    def sc(self, node: str) -> ServiceController:
        controller = self.nodes[address(node)]
        assert isinstance(controller, ServiceController)
        return controller

    def ap(self, node: str) -> AccessPoint:
        ap = self.nodes[address(node)]
        assert isinstance(ap, AccessPoint)
        return ap
