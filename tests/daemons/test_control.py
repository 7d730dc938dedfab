# -*- test-case-name: tests.daemons.test_control -*-
"""
Tests for L{roaming.tap.control.ControlRuntime} inside an SC and an AP
daemon built on memory devices: how it carries out actions, tracks peers,
logs roam stages and survives failing actions.
"""

import ipaddress

from twisted.internet.defer import succeed
from twisted.python.failure import Failure

from roaming.control import actions
from roaming.control.commands import NodeRole
from roaming.control.messages import ApRegister, IappAdd, Keepalive
from roaming.tap import ap, sc
from tests.daemons.fakes import example_config
from tests.daemons.test_services import build

AP_ADDRESS = ipaddress.IPv4Address("10.1.0.11")
SC_ADDRESS = ipaddress.IPv4Address("10.1.0.2")
STATION = bytes.fromhex("02aa00000001")


class FakeTransport:
    """
    The transport of a fake connection: records how it was closed.
    """

    def __init__(self):
        self.lost = False
        self.aborted = False

    def loseConnection(self):
        self.lost = True

    def abortConnection(self):
        self.aborted = True


class FakeConnection:
    """
    What the control node uses of an identified ControlProtocol.
    """

    def __init__(self, peer, role, outgoing=False):
        self.peer = peer
        self.peer_role = role
        self.outgoing = outgoing
        self.transport = FakeTransport()
        self.sent = []
        self.queued = 0

    def send(self, message):
        self.sent.append(message)
        return succeed({})

    def close(self):
        self.transport.loseConnection()


def started(module, tmp_path):
    service, reactor, devices = build(module, example_config(tmp_path, module.__name__[-2:]))
    service.startService()
    assert service.start_failure is None
    return service, reactor, devices


def test_message_waits_for_connection(tmp_path):
    service, _, _ = started(sc, tmp_path)
    service.control.run([actions.Send(AP_ADDRESS, Keepalive(1))])
    connection = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(connection)
    assert Keepalive(1) in connection.sent
    assert service.control.messages_dropped == 0


def test_connect_peer_dials_once(tmp_path):
    service, reactor, _ = started(sc, tmp_path)
    peer = ipaddress.IPv4Address("10.2.0.2")
    service.control.run([actions.ConnectPeer(peer), actions.ConnectPeer(peer)])
    reactor.advance(0)
    assert [(client[0], client[1]) for client in reactor.tcpClients] == [("10.2.0.2", 7443)]
    assert service.control.peers[peer].outgoing
    assert service.control.peers[peer].connection is None


def test_tunnel_actions_reach_datapath(tmp_path):
    service, _, _ = started(sc, tmp_path)
    peer = ipaddress.IPv4Address("10.2.0.2")
    service.control.run([actions.TunnelUp(peer)])
    assert [(kind, address) for kind, address, _ in service.datapath.tunnels()] == [("sc", peer)]
    network = ipaddress.IPv4Network("10.2.0.0/24")
    service.control.run([actions.AddL3Entry(network, peer, actions.L3Match.POSITIVE)])
    (entry,) = service.datapath.units[0].bridge.l3.entries()
    assert (entry.network, entry.positive) == (network, True)
    service.control.run([actions.TunnelDown(peer)])
    assert service.datapath.tunnels() == []
    assert service.datapath.units[0].bridge.l3.entries() == []


def test_identified_ap_registers_and_gets_tunnel(tmp_path):
    service, reactor, _ = started(sc, tmp_path)
    reactor.advance(5)
    connection = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(connection)
    peer = service.control.peers[AP_ADDRESS]
    assert (peer.connection, peer.role, peer.outgoing) == (connection, "ap", False)
    assert peer.since == reactor.seconds()
    register = ApRegister(AP_ADDRESS, (ipaddress.IPv4Network("10.1.0.0/24"),), ())
    service.control.node.message_received(connection, register)
    assert service.kind_of_peer(AP_ADDRESS) == "ap"
    assert [(kind, address) for kind, address, _ in service.datapath.tunnels()] == [
        ("ap", AP_ADDRESS)
    ]
    service.control.node.message_received(connection, IappAdd(STATION, ap=AP_ADDRESS))
    assert service.stages.counts["message-received"] == 1


def test_lost_incoming_peer_forgotten(tmp_path):
    service, _, _ = started(sc, tmp_path)
    connection = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(connection)
    service.control.node.connection_lost(connection, Failure(ConnectionError("gone")))
    assert AP_ADDRESS not in service.control.peers


def test_reconnection_counted(tmp_path):
    service, _, _ = started(sc, tmp_path)
    first = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(first)
    service.control.node.connection_lost(first, Failure(ConnectionError("gone")))
    second = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(second)
    assert service.control.peers[AP_ADDRESS].connection is second
    assert service.control.peers[AP_ADDRESS].connects == 2


def test_failing_role_keeps_connection(tmp_path):
    service, _, _ = started(sc, tmp_path)

    def broken(peer, now):
        raise RuntimeError("role bug")

    service.controller.peer_connected = broken
    connection = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(connection)
    assert service.control.peers[AP_ADDRESS].connection is connection
    assert not connection.transport.lost


def test_failing_action_does_not_stop_others(tmp_path):
    service, _, _ = started(sc, tmp_path)
    apply = service.datapath.apply

    def fail_on_flood(action):
        if isinstance(action, actions.SetFloodToPeer):
            raise ValueError("bridge refused the change")
        return apply(action)

    service.datapath.apply = fail_on_flood
    peer = ipaddress.IPv4Address("10.2.0.2")
    service.control.run([actions.SetFloodToPeer(peer, True), actions.TunnelUp(peer)])
    assert service.control.action_errors == 1
    assert [address for _, address, _ in service.datapath.tunnels()] == [peer]


def test_ap_controller_connection_sends_register(tmp_path):
    service, _, _ = started(ap, tmp_path)
    connection = FakeConnection(SC_ADDRESS, NodeRole.SC, outgoing=True)
    service.control.node.connection_identified(connection)
    names = [type(message).__name__ for message in connection.sent]
    assert names[0] == "ApRegister"
    assert service.access_point.connected
    (radio,) = service.radios
    radio.listener.station_connected(STATION)
    sent = [type(message).__name__ for message in connection.sent]
    assert "IappAdd" in sent
    assert service.stages.counts["message-sent"] >= 1


def test_stop_aborts_connections(tmp_path):
    service, reactor, _ = started(sc, tmp_path)
    connection = FakeConnection(AP_ADDRESS, NodeRole.AP)
    service.control.node.connection_identified(connection)
    service.stopService()
    reactor.advance(1)
    assert connection.transport.aborted
    service.control.node.connection_lost(connection, Failure(ConnectionError("stopped")))
    assert service.control.action_errors == 0
    assert service.datapath.units[0].dispatcher.ports() == {}


def test_reconnect_delays_follow_config(tmp_path):
    service, _, _ = started(ap, tmp_path)
    delays = [service.control._retry_policy(attempt) for attempt in range(12)]
    # etc/roaming-ap.toml: reconnect_initial 0.1, reconnect_max 10.0.
    assert 0.1 <= delays[0] <= 0.2
    assert 0.2 <= delays[1] <= 0.3
    assert all(10.0 <= delay <= 10.1 for delay in delays[8:])
