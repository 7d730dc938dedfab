# -*- test-case-name: tests.daemons.test_bridging -*-
"""
Tests for L{roaming.tap.bridging.NodeDispatcher}: port options, the tunnel
flood policy, bridge events and first-frame watches, with a real bridge
core and memory ports.
"""

import ipaddress

import pytest
from twisted.internet.task import Clock

from roaming.bridge import Bridge, RoamerDetected, ap_entries
from roaming.ports.tunnels import GreTunnel, GreTunnelTable
from roaming.tap.bridging import NodeDispatcher
from tests.daemons.fakes import MemoryGrePort, MemoryPort

STATION = bytes.fromhex("02aa00000001")
HOST = bytes.fromhex("02bb00000002")
BROADCAST = b"\xff" * 6


def ethernet(destination, source, payload=b""):
    """
    Build an IPv4 Ethernet frame padded to 60 bytes; no IP header is
    needed for flooding decisions.
    """
    return (destination + source + b"\x08\x06" + payload).ljust(60, b"\x00")


def arp_request(source, sender_ip):
    """
    Build an ARP request from C{source} claiming C{sender_ip}.
    """
    body = bytes.fromhex("0001080006040001") + source + ipaddress.IPv4Address(sender_ip).packed
    body += bytes(6) + bytes(4)
    return ethernet(BROADCAST, source, body)


class Node:
    """
    A bridge with a LAN port, a radio port and one GRE port with tunnel 1,
    laid out like an AP's VLAN 0 bridge.
    """

    def __init__(self):
        self.bridge = Bridge("vlan0")
        self.events = []
        self.first_frames = []
        self.dispatcher = NodeDispatcher(
            self.bridge,
            clock=Clock(),
            on_events=self.events.extend,
            on_first_frame=lambda mac, port: self.first_frames.append((mac, port)),
        )
        self.lan = MemoryPort("lan0", "packet")
        self.radio = MemoryPort("air0", "packet")
        table = GreTunnelTable("10.1.0.11")
        table.add_tunnel(GreTunnel(1, "10.1.0.2", 0))
        self.gre = MemoryGrePort("gre-sc", "gre", table)
        self.lan_number = self.dispatcher.attach(self.lan, l3_learning=False)
        self.gre_number = self.dispatcher.attach(self.gre, tunnel=True)
        self.radio_number = self.dispatcher.attach(self.radio)
        self.dispatcher.guard(self.lan_number)

    def sent(self, port):
        frames = list(port.sent)
        port.sent.clear()
        return frames


def test_port_options_reach_bridge():
    node = Node()
    ports = {row["name"]: row for row in node.bridge.ports()}
    assert ports["lan0"]["l3_learning"] is False
    assert ports["air0"]["l3_learning"] is True
    assert ports["gre-sc"]["members"] == [1]


def test_lan_broadcast_stays_out_of_tunnel():
    node = Node()
    frame = ethernet(BROADCAST, HOST)
    node.lan.receive(frame)
    assert node.sent(node.radio) == [(None, frame)]
    assert node.sent(node.gre) == []
    assert node.dispatcher.flood_filtered == 1


def test_enabled_tunnel_gets_floods():
    node = Node()
    node.dispatcher.set_flood(node.gre_number, 1, True)
    frame = ethernet(BROADCAST, HOST)
    node.lan.receive(frame)
    assert node.sent(node.gre) == [(1, frame)]
    assert node.dispatcher.flood_enabled(node.gre_number, 1)
    node.dispatcher.set_flood(node.gre_number, 1, False)
    node.lan.receive(frame)
    assert node.sent(node.gre) == []


def test_tunnel_broadcast_kept_off_lan():
    node = Node()
    frame = ethernet(BROADCAST, HOST)
    node.gre.receive(frame, 1)
    assert node.sent(node.radio) == [(None, frame)]
    assert node.sent(node.lan) == []


def test_traveler_broadcast_reaches_lan():
    node = Node()
    node.bridge.add_static(STATION, node.gre_number, 1)
    frame = ethernet(BROADCAST, STATION)
    node.gre.receive(frame, 1)
    assert node.sent(node.lan) == [(None, frame)]


def test_visitor_broadcast_source_forwarded():
    node = Node()
    node.bridge.l3.replace(ap_entries(["10.1.0.0/24"], node.gre_number, 1))
    frame = arp_request(STATION, "10.2.0.50")
    node.radio.receive(frame)
    assert node.sent(node.gre) == [(1, frame)]
    assert node.sent(node.lan) == []
    (event,) = node.events
    assert isinstance(event, RoamerDetected)
    assert event.mac == STATION


def test_unicast_to_tunnel_not_filtered():
    node = Node()
    node.gre.receive(ethernet(BROADCAST, HOST), 1)
    frame = ethernet(HOST, STATION)
    node.radio.receive(frame)
    assert node.sent(node.gre) == [(1, frame)]


def test_allowed_flood_path_between_tunnels():
    node = Node()
    table = GreTunnelTable("10.1.0.11")
    table.add_tunnel(GreTunnel(2, "10.2.0.2", 0))
    other = MemoryGrePort("gre-sc2", "gre", table)
    other_number = node.dispatcher.attach(other, tunnel=True)
    node.dispatcher.allow_flood(node.gre_number, other_number)
    frame = ethernet(BROADCAST, HOST)
    node.gre.receive(frame, 1)
    assert node.sent(other) == [(2, frame)]
    other.receive(ethernet(BROADCAST, STATION), 2)
    assert node.sent(node.gre) == []


def relaying_node():
    """
    Return a L{Node} that relays group frames from tunnel 1 to a second GRE
    port with tunnels 2 and 3, that port, and its bridge port number.
    """
    node = Node()
    table = GreTunnelTable("10.1.0.11")
    table.add_tunnel(GreTunnel(2, "10.2.0.2", 0))
    table.add_tunnel(GreTunnel(3, "10.3.0.2", 0))
    other = MemoryGrePort("gre-sc2", "gre", table)
    other_number = node.dispatcher.attach(other, tunnel=True)
    node.dispatcher.relay(node.gre_number)
    node.dispatcher.allow_flood(node.gre_number, other_number)
    return node, other, other_number


def test_lan_host_broadcast_relayed_between_tunnels():
    node, other, _ = relaying_node()
    node.lan.receive(ethernet(BROADCAST, HOST))
    node.sent(node.radio)
    frame = ethernet(BROADCAST, HOST, b"copied by the home AP")

    node.gre.receive(frame, 1)

    assert sorted(node.sent(other)) == [(2, frame), (3, frame)]
    assert node.dispatcher.relayed == 1
    # The bridge never saw the copy: the host stays learned on the LAN
    # port and the copy reaches no other port.
    entry = node.bridge.lookup(HOST)
    assert entry is not None
    assert entry.port == node.lan_number
    assert node.sent(node.radio) == []
    assert node.sent(node.lan) == []


def test_relay_skips_missing_target_port():
    node, other, other_number = relaying_node()
    node.lan.receive(ethernet(BROADCAST, HOST))
    node.dispatcher.detach(other_number)

    node.gre.receive(ethernet(BROADCAST, HOST), 1)

    assert node.sent(other) == []
    assert node.dispatcher.relayed == 1


def test_tunnel_source_broadcast_not_relayed():
    node, other, _ = relaying_node()
    node.gre.receive(ethernet(HOST, STATION), 1)
    node.sent(node.radio)
    node.sent(other)
    frame = ethernet(BROADCAST, STATION)

    node.gre.receive(frame, 1)

    assert node.dispatcher.relayed == 0
    # The bridge floods it, and the flood path lets it into both tunnels.
    assert node.sent(node.radio) == [(None, frame)]
    assert sorted(node.sent(other)) == [(2, frame), (3, frame)]


def test_unknown_and_traveler_broadcasts_not_relayed():
    node, _, _ = relaying_node()
    node.bridge.add_static(STATION, node.gre_number, 1)
    unknown = ethernet(BROADCAST, bytes.fromhex("02cc00000003"))
    traveler = ethernet(BROADCAST, STATION)

    node.gre.receive(unknown, 1)
    node.gre.receive(traveler, 1)

    assert node.dispatcher.relayed == 0
    assert node.sent(node.radio) == [(None, unknown), (None, traveler)]


def test_lan_host_unicast_not_relayed():
    node, other, _ = relaying_node()
    node.lan.receive(ethernet(BROADCAST, HOST))
    node.radio.receive(ethernet(HOST, STATION))
    node.sent(node.lan)
    node.sent(node.radio)
    frame = ethernet(STATION, HOST)

    node.gre.receive(frame, 1)

    assert node.dispatcher.relayed == 0
    assert node.sent(node.radio) == [(None, frame)]
    assert node.sent(other) == []


def test_own_frames_stay_out_of_tunnels():
    node = Node()
    own = MemoryPort("rmbr0", "tap")
    own_number = node.dispatcher.attach(own, l3_learning=False)
    node.dispatcher.keep_local(own_number, node.lan_number)
    node.dispatcher.set_flood(node.gre_number, 1, True)
    node.gre.receive(ethernet(BROADCAST, HOST), 1)
    node.sent(node.radio)
    broadcast = ethernet(BROADCAST, bytes.fromhex("02cc00000003"))
    own.receive(broadcast)
    assert node.sent(node.gre) == []
    assert node.sent(node.lan) == [(None, broadcast)]
    unicast = ethernet(HOST, bytes.fromhex("02cc00000003"))
    own.receive(unicast)
    assert node.sent(node.gre) == []
    assert node.sent(node.lan) == [(None, unicast)]


def test_first_frame_reported_once():
    node = Node()
    node.radio.receive(ethernet(HOST, STATION))
    node.dispatcher.watched.add(STATION)
    frame = ethernet(STATION, HOST)
    node.lan.receive(frame)
    node.lan.receive(frame)
    assert node.first_frames == [(STATION, "air0")]
    assert node.dispatcher.watched == set()


def test_detach_removes_port_and_its_l3_entries():
    node = Node()
    node.bridge.l3.replace(ap_entries(["10.1.0.0/24"], node.gre_number, 1))
    node.dispatcher.detach(node.gre_number)
    assert node.gre.stopped
    assert len(node.bridge.l3) == 0
    assert "gre-sc" not in [row["name"] for row in node.bridge.ports()]


def test_failed_start_leaves_no_port():
    node = Node()
    broken = MemoryPort("broken", "packet")

    def fail(sink):
        raise OSError("no such device")

    broken.start_port = fail
    try:
        node.dispatcher.attach(broken)
    except OSError as error:
        assert "no such device" in str(error)
    else:
        raise AssertionError("attach did not raise")
    assert "broken" not in [row["name"] for row in node.bridge.ports()]


def test_empty_frame_counted_not_raised():
    node = Node()
    node.dispatcher.relay(node.gre_number)
    for port, agg_id in ((node.gre, 1), (node.lan, None), (node.radio, None)):
        port.receive(b"", agg_id)
    assert node.dispatcher.bridge_errors == 0
    assert node.bridge.counters()["drops"]["runt"] == 3
    assert node.sent(node.lan) == []
    assert node.sent(node.radio) == []
    assert node.sent(node.gre) == []


class CountingBridge(Bridge):
    """
    A bridge that counts the calls of pop_events().
    """

    pops = 0

    def pop_events(self):
        self.pops += 1
        return super().pop_events()


def test_events_popped_only_when_queued():
    bridge = CountingBridge("vlan0")
    events = []
    dispatcher = NodeDispatcher(
        bridge, clock=Clock(), on_events=events.extend, on_first_frame=lambda mac, port: None
    )
    lan = MemoryPort("lan0", "packet")
    radio = MemoryPort("air0", "packet")
    dispatcher.attach(lan, l3_learning=False)
    dispatcher.attach(radio)
    bridge.pop_events()
    bridge.pops = 0
    frame = ethernet(HOST, STATION)
    for _ in range(5):
        lan.receive(ethernet(STATION, HOST))
        radio.receive(frame)
    assert bridge.pops == 0
    assert events == []
    bridge.l3.replace(ap_entries(["10.1.0.0/24"], 1, None))
    radio.receive(arp_request(bytes.fromhex("02aa000000ff"), "10.2.0.60"))
    assert bridge.pops == 1
    assert [type(event) for event in events] == [RoamerDetected]


def test_failed_tunnel_start_leaves_no_policy():
    node = Node()
    table = GreTunnelTable("10.1.0.11")
    table.add_tunnel(GreTunnel(2, "10.1.0.3", 0))
    broken = MemoryGrePort("gre-ap", "gre", table)

    def fail(sink):
        raise OSError("address not available")

    broken.start_port = fail
    with pytest.raises(OSError, match="address not available"):
        node.dispatcher.attach(broken, tunnel=True)
    assert "gre-ap" not in [row["name"] for row in node.bridge.ports()]
    names = [port.name for port in node.dispatcher.ports().values()]
    assert names == ["lan0", "gre-sc", "air0"]


def test_send_exception_counted_and_others_served():
    node = Node()
    node.dispatcher.set_flood(node.gre_number, 1, True)

    def broken_send(frame, agg_id=None):
        raise RuntimeError("socket gone")

    node.radio.send_frame = broken_send
    request = arp_request(STATION, "10.1.0.50")
    node.lan.receive(request)
    assert node.dispatcher.send_errors == 1
    assert node.sent(node.gre) == [(1, request)]
