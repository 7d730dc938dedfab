# -*- test-case-name: tests.daemons.test_node -*-
"""
Tests for L{roaming.tap.node.NodeDatapath}: control plane actions that the
bridge rejects, and static entries that go with a tunnel.
"""

import ipaddress
import json

from roaming.control import actions
from roaming.tap import ap, sc
from roaming.tap.localapi import LocalAPIFactory
from roaming.tap.views import make_views
from tests.daemons.fakes import OWN_MAC, example_config
from tests.daemons.test_services import build

STATION = bytes.fromhex("02aa00000001")
HOST = bytes.fromhex("02bb00000002")
SC_ONE = ipaddress.IPv4Address("10.3.0.2")
SC_TWO = ipaddress.IPv4Address("10.4.0.2")
CONTROLLER = ipaddress.IPv4Address("10.1.0.2")


def frame(destination, source):
    """
    Build a 60-byte Ethernet frame with an ARP EtherType and no body.
    """
    return (destination + source + b"\x08\x06").ljust(60, b"\x00")


def start(tmp_path, module, **replacements):
    role = "sc" if module is sc else "ap"
    service, _reactor, devices = build(module, example_config(tmp_path, role, **replacements))
    service.startService()
    assert service.start_failure is None
    return service, devices


def test_split_horizon_source_rejected(tmp_path):
    service, _devices = start(tmp_path, sc)
    datapath = service.datapath
    bridge = datapath.units[0].bridge
    port, one = datapath.tunnel_up(SC_ONE)
    datapath.tunnel_up(SC_TWO)
    gre_sc = datapath.gre["sc"].port.port
    gre_sc.receive(frame(HOST, STATION), one)
    # Source egress towards SC_TWO while the station is behind SC_ONE on
    # the same split-horizon port: the bridge rejects it.
    assert datapath.apply(actions.SetSourceEntry(STATION, SC_TWO, 0))
    assert datapath.static_errors == 1
    entry = bridge.lookup(STATION)
    assert (entry.port, entry.agg_id) == (port, one)
    assert entry.static is False
    assert entry.src_egress is None


def test_static_entry_rejected_when_full(tmp_path):
    service, _devices = start(tmp_path, sc, **{"# max_entries = 8192": "max_entries = 16"})
    datapath = service.datapath
    bridge = datapath.units[0].bridge
    # The node's own MAC address takes one of the 16 entries.
    macs = [bytes.fromhex(f"02aa000001{index:02x}") for index in range(16)]
    for mac in macs:
        assert datapath.apply(actions.AddStaticEntry(mac, SC_ONE, 0))
    assert datapath.static_errors == 1
    assert all(bridge.lookup(mac).static for mac in macs[:15])
    assert bridge.lookup(macs[15]) is None


def test_tunnel_down_drops_its_statics(tmp_path):
    service, devices = start(tmp_path, ap)
    datapath = service.datapath
    bridge = datapath.units[0].bridge
    (radio,) = devices.radios
    radio.listener.station_connected(STATION)
    assert datapath.apply(actions.SetSourceEntry(STATION, CONTROLLER, 0))
    entry = bridge.lookup(STATION)
    assert entry.static is True
    assert entry.src_egress is not None

    assert datapath.apply(actions.TunnelDown(CONTROLLER))
    assert bridge.lookup(STATION) is None
    assert datapath.tunnels() == []

    # The tunnel comes back and the station is tunnelled as a traveler: the
    # source entry removed with the old tunnel must not take the traveler's
    # static entry with it.
    assert datapath.apply(actions.TunnelUp(CONTROLLER))
    assert datapath.apply(actions.AddStaticEntry(STATION, CONTROLLER, 0))
    assert datapath.apply(actions.ClearSourceEntry(STATION, 0))
    entry = bridge.lookup(STATION)
    assert entry is not None
    assert entry.static is True
    assert (entry.port, entry.agg_id) == datapath.egress_for(CONTROLLER)


def test_tunnel_down_keeps_other_statics(tmp_path):
    service, _devices = start(tmp_path, sc)
    datapath = service.datapath
    bridge = datapath.units[0].bridge
    assert datapath.apply(actions.AddStaticEntry(STATION, SC_ONE, 0))
    assert datapath.apply(actions.AddStaticEntry(HOST, SC_TWO, 0))
    assert datapath.apply(actions.TunnelDown(SC_ONE))
    assert bridge.lookup(STATION) is None
    assert bridge.lookup(HOST).static is True
    assert datapath.static_errors == 0


def test_packet_port_interfaces_isolated(tmp_path):
    _service, devices = start(tmp_path, ap)
    assert devices.isolated == ["eth0", "wlan0"]


def test_sc_lan_interface_isolated(tmp_path):
    _service, devices = start(tmp_path, sc)
    assert devices.isolated == ["eth0"]


def test_own_mac_stays_on_own_port(tmp_path):
    service, devices = start(tmp_path, ap)
    unit = service.datapath.units[0]
    entry = unit.bridge.lookup(OWN_MAC)
    assert entry.static is True
    assert entry.port == unit.ports["self"]

    # A frame from the node's own address comes back through the tunnel,
    # such as its own broadcast that a peer flooded back.
    gre = devices.port("gre-ip:10.1.0.11")
    gre.receive(frame(b"\xff" * 6, OWN_MAC), 1)
    entry = unit.bridge.lookup(OWN_MAC)
    assert (entry.port, entry.agg_id) == (unit.ports["self"], None)

    # Frames to the node from the LAN still reach its own port, not the
    # tunnel.
    gre.sent.clear()
    devices.port("eth0").receive(frame(OWN_MAC, HOST))
    assert gre.sent == []
    assert devices.port("rmbr0").sent[-1] == (None, frame(OWN_MAC, HOST))


def test_static_errors_counted_in_views(tmp_path):
    service, _devices = start(tmp_path, sc, **{"# max_entries = 8192": "max_entries = 16"})
    for index in range(16):
        mac = bytes.fromhex(f"02aa000002{index:02x}")
        service.datapath.apply(actions.AddStaticEntry(mac, SC_ONE, 0))
    api = LocalAPIFactory(make_views(service))
    reply = api.respond(json.dumps({"request": "counters"}).encode())
    counters = {(row[0], row[1]): row[2] for row in reply["rows"]}
    assert counters[("static_entry_errors", "")] == 1


def test_frame_size_limit_reaches_bridge(tmp_path):
    service, devices = start(tmp_path, ap, **{"# max_l3_entries = 1024": "max_frame_size = 1400"})
    unit = service.datapath.units[0]
    own = devices.port("rmbr0")
    lan = devices.port("eth0")

    lan.receive(frame(OWN_MAC, HOST).ljust(1400, b"\x00"))
    assert len(own.sent) == 1

    lan.receive(frame(OWN_MAC, HOST).ljust(1401, b"\x00"))
    assert len(own.sent) == 1
    assert unit.bridge.counters()["drops"]["oversized"] == 1


def test_frame_size_limit_reaches_gre_engine(tmp_path):
    service, _devices = start(tmp_path, sc, **{"# max_l3_entries = 1024": "max_frame_size = 9000"})
    assert service.datapath.gre["ap"].engine.max_frame_size == 9000


def test_frame_size_limit_default(tmp_path):
    service, _devices = start(tmp_path, ap)
    assert service.datapath.gre["sc"].engine.max_frame_size == 1522


def test_sc_gre_ports_ignore_each_others_peers(tmp_path):
    service, _devices = start(tmp_path, sc)
    datapath = service.datapath
    datapath.tunnel_up(SC_ONE)
    ap_port = datapath.gre["ap"].port.port
    sc_port = datapath.gre["sc"].port.port
    assert ap_port.ignore_remote(str(SC_ONE)) is True
    assert sc_port.ignore_remote(str(SC_ONE)) is False

    # A remote with no tunnel is left to both engines, which count it.
    assert ap_port.ignore_remote("10.9.9.9") is False
    assert sc_port.ignore_remote("10.9.9.9") is False

    datapath.tunnel_down(SC_ONE)
    assert ap_port.ignore_remote(str(SC_ONE)) is False


def test_udp_gre_ports_unfiltered(tmp_path):
    service, _devices = start(tmp_path, sc, **{'# transport = "ip"': 'transport = "udp"'})
    gre = service.datapath.gre
    assert gre["ap"].port.port.ignore_remote is None
    assert gre["sc"].port.port.ignore_remote is None
    assert gre["sc"].port.port.udp_port == gre["ap"].port.port.udp_port + 1


def test_ap_gre_port_unfiltered(tmp_path):
    service, _devices = start(tmp_path, ap)
    assert service.datapath.gre["sc"].port.port.ignore_remote is None


def test_send_errors_counted_in_views(tmp_path):
    service, devices = start(tmp_path, ap)
    own = devices.port("rmbr0")

    def broken_send(frame, agg_id=None):
        raise RuntimeError("socket gone")

    own.send_frame = broken_send
    devices.port("eth0").receive(frame(OWN_MAC, HOST))
    api = LocalAPIFactory(make_views(service))
    reply = api.respond(json.dumps({"request": "counters"}).encode())
    counters = {(row[0], row[1]): row[2] for row in reply["rows"]}
    assert counters[("dispatch_send_errors", "vlan=0")] == 1
    assert counters[("dispatch_bridge_errors", "vlan=0")] == 0


def test_l3_entries_stay_on_their_vlan(tmp_path):
    """
    The negative entries that the AP role sends after connecting to its SC
    reach only the VLAN 0 bridge, which carries the tunnel, and only for
    VLAN 0's subnets. A subnet of another VLAN never becomes an entry of the
    VLAN 0 bridge, where it would mark its addresses as local.
    """
    second_subnet = '[[subnet]]\nnetwork = "10.5.0.0/24"\nvlan = 5\n\n[[vsc]]'
    service, _devices = start(tmp_path, ap, **{"[[vsc]]": second_subnet})
    datapath = service.datapath
    to_do = service.access_point.controller_connected(0.0)
    l3_actions = [action for action in to_do if isinstance(action, actions.AddL3Entry)]
    assert {str(action.network) for action in l3_actions} == {"10.1.0.0/24", "10.5.0.0/24"}
    for action in l3_actions:
        assert datapath.apply(action)
    networks = {
        vlan: [str(entry.network) for entry in unit.bridge.l3.entries()]
        for vlan, unit in datapath.units.items()
    }
    assert networks == {0: ["10.1.0.0/24"], 5: []}
    for action in service.access_point.controller_lost(1.0):
        datapath.apply(action)
    assert [entry.network for entry in datapath.units[0].bridge.l3.entries()] == []
