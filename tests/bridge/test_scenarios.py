# -*- test-case-name: tests.bridge.test_scenarios -*-
"""
The bridge's learning and forwarding rules, as a table of scenarios.

Each scenario is a list of steps: a frame arrives on an ingress, and the
bridge must return exactly the listed egresses (an empty list is a drop).
Egresses are written as names: "wlan" and "eth" are plain ports, "gre:1"
is member 1 of the aggregation port "gre".

The access point bridge ("ap") serves subnet 10.1.0.0/16 on its radio
("wlan") and its wired uplink ("eth"), and reaches its service controller
through GRE member 1; member 2 is a second tunnel.  The uplink learns by MAC
address only (C{l3_learning=False}), because its router forwards packets
from every subnet.  Its layer-3 database
contains one negative entry: anything outside 10.1.0.0/16 goes to gre:1.

The service controller bridge ("sc") aggregates its access points' tunnels
on "ap" (members 11 and 12) and its neighbour controllers on "sc" (members
21 for subnet 10.2.0.0/16 and 22 for 10.3.0.0/16, split horizon), with its
own subnet on "eth", also learning by MAC address only.
"""

from dataclasses import dataclass, field

import pytest

from roaming.bridge import (
    AddressLearned,
    Bridge,
    ClearReason,
    RoamerDetected,
    SourceCleared,
    StationMoved,
    ap_entries,
    sc_entries,
)

from .frames import BROADCAST, arp_request, dhcp, ip_to_int, ipv4_udp, mac, tagged

# Stations.  HOME lives in the access point's subnet 10.1.0.0/16; VISITOR
# comes from 10.2.0.0/16; ROUTER_A and ROUTER_B are the two subnets' routers.
HOME = "02:00:00:00:01:05"
HOME_IP = "10.1.0.5"
ROUTER_A = "02:00:00:00:01:01"
ROUTER_A_IP = "10.1.0.1"
VISITOR = "02:00:00:00:02:07"
VISITOR_IP = "10.2.0.7"
ROUTER_B = "02:00:00:00:02:01"
ROUTER_B_IP = "10.2.0.1"
TRAVELLER_C = "02:00:00:00:03:09"
TRAVELLER_C_IP = "10.3.0.9"
MDNS_MAC = "01:00:5e:00:00:fb"


def build_ap(*, with_l3: bool = True) -> tuple[Bridge, dict[str, tuple[int, int | None]]]:
    """Return the access point bridge and its egress names."""
    bridge = Bridge("ap")
    wlan = bridge.add_port("wlan")
    eth = bridge.add_port("eth", l3_learning=False)
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 2)
    if with_l3:
        bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    names = {"wlan": (wlan, None), "eth": (eth, None), "gre:1": (gre, 1), "gre:2": (gre, 2)}
    return bridge, names


def build_sc() -> tuple[Bridge, dict[str, tuple[int, int | None]]]:
    """Return the service controller bridge and its egress names."""
    bridge = Bridge("sc")
    aps = bridge.add_port("ap", aggregation=True)
    scs = bridge.add_port("sc", aggregation=True, split_horizon=True)
    eth = bridge.add_port("eth", l3_learning=False)
    for member in (11, 12):
        bridge.add_member(aps, member)
    for member in (21, 22):
        bridge.add_member(scs, member)
    bridge.l3.replace(sc_entries([("10.2.0.0/16", scs, 21), ("10.3.0.0/16", scs, 22)]))
    names = {
        "ap:11": (aps, 11),
        "ap:12": (aps, 12),
        "sc:21": (scs, 21),
        "sc:22": (scs, 22),
        "eth": (eth, None),
    }
    return bridge, names


@dataclass(frozen=True)
class Step:
    """A frame arriving at time C{at}, and the egresses the bridge must return."""

    ingress: str
    frame: bytes
    expected: list[str]
    at: float = 0.0


@dataclass(frozen=True)
class Expire:
    """A call to C{Bridge.expire(at)} that must remove C{removed} entries."""

    at: float
    removed: int


@dataclass(frozen=True)
class Scenario:
    name: str
    bridge: str
    steps: list[Step | Expire] = field(default_factory=list)
    with_l3: bool = True


def udp(src: str, dst: str, src_ip: str, dst_ip: str) -> bytes:
    return ipv4_udp(src, dst, src_ip, dst_ip)


AP_FLOOD_FROM_WLAN = ["eth", "gre:1", "gre:2"]
AP_FLOOD_FROM_ETH = ["wlan", "gre:1", "gre:2"]
SC_LOCAL = ["ap:11", "ap:12", "eth"]
VISITOR_BROADCAST = udp(VISITOR, BROADCAST, VISITOR_IP, "255.255.255.255")

SCENARIOS = [
    Scenario(
        "home client",
        "ap",
        [
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), AP_FLOOD_FROM_WLAN),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan"]),
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["eth"]),
            Step("wlan", arp_request(HOME, HOME_IP, ROUTER_A_IP), AP_FLOOD_FROM_WLAN),
        ],
    ),
    Scenario(
        "first frame from a roamer",
        "ap",
        [
            # Steered home on its very first frame, to an unknown destination.
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
            # The home router's reply comes back through the tunnel.  Its
            # address is foreign too, but the match points at its own ingress,
            # so it is no visitor and its frames are bridged by destination.
            Step("gre:1", udp(ROUTER_B, VISITOR, "8.8.8.8", VISITOR_IP), ["wlan"]),
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
        ],
    ),
    Scenario(
        "ARP before any IP packet",
        "ap",
        [
            Step("wlan", arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), ["gre:1"]),
            Step(
                "gre:1",
                arp_request(ROUTER_B, ROUTER_B_IP, VISITOR_IP, dst_mac=VISITOR),
                ["wlan"],
            ),
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
        ],
    ),
    Scenario(
        "tagged ARP, 802.1Q",
        "ap",
        [Step("wlan", tagged(arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), 100), ["gre:1"])],
    ),
    Scenario(
        "tagged ARP, 802.1ad",
        "ap",
        [Step("wlan", tagged(arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), 10, 100), ["gre:1"])],
    ),
    Scenario(
        "tagged ARP, 0x9100 QinQ",
        "ap",
        [
            Step(
                "wlan",
                tagged(arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), 10, 100, outer_tpid=0x9100),
                ["gre:1"],
            )
        ],
    ),
    Scenario(
        "tagged ARP from a home client",
        "ap",
        [Step("wlan", tagged(arp_request(HOME, HOME_IP, ROUTER_A_IP), 100), AP_FLOOD_FROM_WLAN)],
    ),
    Scenario(
        "DHCP DISCOVER resetting a roamer",
        "ap",
        [
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
            # The station gives up its home subnet: plain flooding, locally.
            Step("wlan", dhcp(VISITOR, "discover"), AP_FLOOD_FROM_WLAN),
            Step("eth", udp(ROUTER_A, VISITOR, ROUTER_A_IP, "10.1.0.77"), ["wlan"]),
            Step("wlan", dhcp(VISITOR, "request", requested="10.1.0.77"), AP_FLOOD_FROM_WLAN),
            # With its new local address it is a home client.
            Step("wlan", udp(VISITOR, ROUTER_A, "10.1.0.77", "8.8.8.8"), ["eth"]),
            Step("wlan", udp(VISITOR, BROADCAST, "10.1.0.77", "10.1.255.255"), AP_FLOOD_FROM_WLAN),
        ],
    ),
    Scenario(
        "DHCP REQUEST from 0.0.0.0 resetting a roamer",
        "ap",
        [
            Step("wlan", arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), ["gre:1"]),
            # SELECTING: the answer to an offer, with the server identifier.
            # Even a foreign requested address is no address of its own.
            Step(
                "wlan",
                dhcp(VISITOR, "request", requested=VISITOR_IP, server_id=ROUTER_B_IP),
                AP_FLOOD_FROM_WLAN,
            ),
            Step("wlan", udp(VISITOR, BROADCAST, "0.0.0.0", "255.255.255.255"), AP_FLOOD_FROM_WLAN),
        ],
    ),
    Scenario(
        "DHCP INIT-REBOOT with a foreign address goes home",
        "ap",
        [
            # A rebooted visitor asks to keep its home address: ciaddr and
            # source are 0.0.0.0, option 50 carries the address and there is
            # no server identifier.  Only the home server can confirm it.
            Step("wlan", dhcp(VISITOR, "request", requested=VISITOR_IP), ["gre:1"]),
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
            Step("wlan", dhcp(VISITOR, "request", requested=VISITOR_IP), ["gre:1"]),
        ],
    ),
    Scenario(
        "DHCP INIT-REBOOT with a local address resets a roamer",
        "ap",
        [
            Step("wlan", arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), ["gre:1"]),
            # Option 50 is an address of this subnet: the local server
            # answers it, so the REQUEST is bridged here like any other.
            Step("wlan", dhcp(VISITOR, "request", requested="10.1.0.77"), AP_FLOOD_FROM_WLAN),
            # Option 50 outside every subnet: the REQUEST from 0.0.0.0 resets.
            Step("wlan", dhcp(VISITOR, "request", requested="169.254.3.3"), AP_FLOOD_FROM_WLAN),
        ],
    ),
    Scenario(
        "DHCP REQUEST with its own address goes home",
        "ap",
        [
            Step("wlan", dhcp(VISITOR, "discover"), AP_FLOOD_FROM_WLAN),
            # Rebinding: broadcast, ciaddr and source are the client's address.
            Step(
                "wlan",
                dhcp(VISITOR, "request", src_ip=VISITOR_IP, ciaddr=VISITOR_IP),
                ["gre:1"],
            ),
            # Renewing: unicast to the server, ciaddr set.
            Step(
                "wlan",
                dhcp(
                    VISITOR,
                    "request",
                    src_ip=VISITOR_IP,
                    ciaddr=VISITOR_IP,
                    dst_ip=ROUTER_B_IP,
                    dst_mac=ROUTER_B,
                ),
                ["gre:1"],
            ),
        ],
    ),
    Scenario(
        "roam back home",
        "ap",
        [
            # Away, the home client's frames reach its home access point
            # through the tunnel; its address is local, so no source egress.
            Step("gre:1", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["wlan", "eth", "gre:2"]),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["gre:1"]),
            # Back on the radio: learned there at once.
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["eth"]),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan"]),
            Step("wlan", udp(HOME, BROADCAST, HOME_IP, "10.1.255.255"), AP_FLOOD_FROM_WLAN),
        ],
    ),
    Scenario(
        "broadcast from a roamer",
        "ap",
        [
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
            Step("wlan", VISITOR_BROADCAST, ["gre:1"]),
            Step("wlan", udp(VISITOR, MDNS_MAC, VISITOR_IP, "224.0.0.251"), ["gre:1"]),
            Step("wlan", arp_request(VISITOR, VISITOR_IP, "10.2.0.99"), ["gre:1"]),
            # A home client's broadcast still floods.
            Step("wlan", udp(HOME, BROADCAST, HOME_IP, "255.255.255.255"), AP_FLOOD_FROM_WLAN),
        ],
    ),
    Scenario(
        "empty L3 database",
        "ap",
        [
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), AP_FLOOD_FROM_WLAN),
            Step("wlan", arp_request(VISITOR, VISITOR_IP, ROUTER_B_IP), AP_FLOOD_FROM_WLAN),
            Step("gre:1", udp(ROUTER_B, VISITOR, "8.8.8.8", VISITOR_IP), ["wlan"]),
            Step("wlan", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["gre:1"]),
            Step(
                "wlan", udp(VISITOR, BROADCAST, VISITOR_IP, "255.255.255.255"), AP_FLOOD_FROM_WLAN
            ),
        ],
        with_l3=False,
    ),
    Scenario(
        "MAC move",
        "ap",
        [
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), AP_FLOOD_FROM_WLAN),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan"]),
            # Seen on another member of the aggregation port: moves at once.
            Step("gre:2", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["eth"]),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["gre:2"]),
            Step("gre:1", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["eth"]),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["gre:1"]),
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["eth"]),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan"]),
        ],
    ),
    Scenario(
        "aging",
        "ap",
        [
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), AP_FLOOD_FROM_WLAN, at=0.0),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan"], at=0.0),
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), ["eth"], at=200.0),
            Expire(299.0, removed=0),
            # ROUTER_A was last seen at 0 and HOME at 200; aging time is 300.
            Expire(300.0, removed=1),
            Step("wlan", udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), AP_FLOOD_FROM_WLAN, at=300.0),
            Step("eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan"], at=301.0),
            Expire(600.0, removed=1),
            Step(
                "eth", udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), ["wlan", "gre:1", "gre:2"], at=601
            ),
        ],
    ),
    Scenario(
        "visitor through an access point tunnel",
        "sc",
        [
            Step("ap:11", udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), ["sc:21"]),
            Step("sc:21", udp(ROUTER_B, VISITOR, "8.8.8.8", VISITOR_IP), ["ap:11"]),
            Step("ap:11", udp(VISITOR, BROADCAST, VISITOR_IP, "255.255.255.255"), ["sc:21"]),
            Step("ap:11", arp_request(TRAVELLER_C, TRAVELLER_C_IP, "10.3.0.1"), ["sc:22"]),
        ],
    ),
    Scenario(
        "flooding across aggregation members",
        "sc",
        [
            # A local station's broadcast reaches every other member, and the
            # other members of its own aggregation port.
            Step(
                "ap:11",
                udp(HOME, BROADCAST, HOME_IP, "255.255.255.255"),
                ["ap:12", "sc:21", "sc:22", "eth"],
            ),
            # Split horizon: nothing from one neighbour goes to another.
            Step(
                "sc:21",
                udp(ROUTER_B, BROADCAST, ROUTER_B_IP, "255.255.255.255"),
                ["ap:11", "ap:12", "eth"],
            ),
        ],
    ),
    Scenario(
        "split horizon between neighbour controllers",
        "sc",
        [
            # In a full mesh the 10.2 neighbour reaches the 10.3 neighbour
            # directly, so this controller relays nothing between them.  A
            # station of 10.3.0.0/16 arriving from the 10.2 neighbour is no
            # visitor here, and its frames go to local ports only.
            Step(
                "sc:21",
                udp(TRAVELLER_C, ROUTER_B, TRAVELLER_C_IP, "8.8.8.8"),
                ["ap:11", "ap:12", "eth"],
            ),
            # Known unicast between neighbours is dropped too.
            Step("sc:22", udp(ROUTER_B, BROADCAST, ROUTER_B_IP, "255.255.255.255"), SC_LOCAL),
            Step("sc:21", udp(TRAVELLER_C, ROUTER_B, TRAVELLER_C_IP, "8.8.8.8"), []),
            # From a local port, both neighbours stay reachable.
            Step("eth", udp(HOME, ROUTER_B, HOME_IP, "8.8.8.8"), ["sc:22"]),
            Step("eth", udp(HOME, TRAVELLER_C, HOME_IP, TRAVELLER_C_IP), ["sc:21"]),
        ],
    ),
]


def run_scenario(scenario: Scenario) -> tuple[Bridge, dict]:
    if scenario.bridge == "ap":
        bridge, names = build_ap(with_l3=scenario.with_l3)
    else:
        bridge, names = build_sc()
    for number, step in enumerate(scenario.steps):
        if isinstance(step, Expire):
            removed = bridge.expire(step.at)
            assert removed == step.removed, f"step {number}: expire({step.at})"
            continue
        port, agg_id = names[step.ingress]
        result = bridge.process(port, agg_id, step.frame, step.at)
        expected = [names[name] for name in step.expected]
        assert len(result) == len(set(result)), f"step {number}: duplicate egress {result}"
        assert sorted(result, key=repr) == sorted(expected, key=repr), (
            f"step {number} ({step.ingress}): got {result}, expected {step.expected}"
        )
    return bridge, names


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    """Each frame of the scenario reaches exactly the listed egresses."""
    run_scenario(scenario)


def scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def test_roamer_event_and_entry() -> None:
    """The first frame of a visitor queues one RoamerDetected and sets its SRC."""
    bridge, names = run_scenario(scenario("first frame from a roamer"))
    wlan = names["wlan"][0]
    gre = names["gre:1"][0]
    events = bridge.pop_events()
    roamers = [e for e in events if isinstance(e, RoamerDetected)]
    assert roamers == [RoamerDetected(mac(VISITOR), ip_to_int(VISITOR_IP), wlan, None, gre, 1)]
    entry = bridge.lookup(VISITOR)
    assert entry is not None
    assert entry.src_egress == ((gre, 1),)
    assert entry.authorised
    router = bridge.lookup(ROUTER_B)
    assert router is not None
    assert router.src_egress is None
    assert (router.port, router.agg_id) == (gre, 1)


def test_arp_roamer_event() -> None:
    """An ARP request is enough to detect a visitor, by its sender address."""
    bridge, _ = run_scenario(scenario("ARP before any IP packet"))
    roamers = [e for e in bridge.pop_events() if isinstance(e, RoamerDetected)]
    assert [(e.mac, e.ip) for e in roamers] == [(mac(VISITOR), ip_to_int(VISITOR_IP))]


def test_dhcp_discover_events() -> None:
    """DHCP DISCOVER ends the source forwarding with one SourceCleared."""
    bridge, _ = run_scenario(scenario("DHCP DISCOVER resetting a roamer"))
    events = bridge.pop_events()
    cleared = [e for e in events if isinstance(e, SourceCleared)]
    assert cleared == [SourceCleared(mac(VISITOR), ClearReason.DHCP_DISCOVER)]
    learned = [e for e in events if isinstance(e, AddressLearned) and e.mac == mac(VISITOR)]
    assert [e.ip for e in learned] == [ip_to_int("10.1.0.77")]
    entry = bridge.lookup(VISITOR)
    assert entry is not None
    assert entry.src_egress is None


def test_dhcp_request_without_address_event() -> None:
    """A DHCP REQUEST from 0.0.0.0 without ciaddr clears like DISCOVER."""
    bridge, _ = run_scenario(scenario("DHCP REQUEST from 0.0.0.0 resetting a roamer"))
    cleared = [e for e in bridge.pop_events() if isinstance(e, SourceCleared)]
    assert cleared == [SourceCleared(mac(VISITOR), ClearReason.DHCP_REQUEST_NO_ADDRESS)]


def test_init_reboot_events() -> None:
    """A foreign INIT-REBOOT REQUEST makes a visitor: one RoamerDetected, SRC set."""
    bridge, names = run_scenario(scenario("DHCP INIT-REBOOT with a foreign address goes home"))
    wlan = names["wlan"][0]
    gre = names["gre:1"][0]
    roamers = [e for e in bridge.pop_events() if isinstance(e, RoamerDetected)]
    assert roamers == [RoamerDetected(mac(VISITOR), ip_to_int(VISITOR_IP), wlan, None, gre, 1)]
    assert bridge.lookup(VISITOR).src_egress == ((gre, 1),)


def test_init_reboot_local_events() -> None:
    """A local INIT-REBOOT REQUEST resets the visitor like one without an address."""
    bridge, _ = run_scenario(scenario("DHCP INIT-REBOOT with a local address resets a roamer"))
    cleared = [e for e in bridge.pop_events() if isinstance(e, SourceCleared)]
    assert cleared == [SourceCleared(mac(VISITOR), ClearReason.DHCP_REQUEST_NO_ADDRESS)]
    assert bridge.lookup(VISITOR).src_egress is None


def test_roam_back_home_events() -> None:
    """Coming back to the radio queues a StationMoved and no RoamerDetected."""
    bridge, names = run_scenario(scenario("roam back home"))
    events = bridge.pop_events()
    moves = [e for e in events if isinstance(e, StationMoved)]
    gre, wlan = names["gre:1"][0], names["wlan"][0]
    assert moves == [StationMoved(mac(HOME), gre, 1, wlan, None)]
    assert not [e for e in events if isinstance(e, RoamerDetected)]


def test_empty_l3_no_roamer_events() -> None:
    """With an empty layer-3 database nothing is ever a visitor."""
    bridge, _ = run_scenario(scenario("empty L3 database"))
    events = bridge.pop_events()
    assert not [e for e in events if isinstance(e, RoamerDetected | SourceCleared)]
    for row in bridge.fdb_rows():
        assert row["src_port"] is None


def test_aging_clears_visitor() -> None:
    """An aged visitor's entry ends its source forwarding with SourceCleared(AGED)."""
    bridge, names = build_ap()
    wlan = names["wlan"][0]
    bridge.process(wlan, None, udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8"), 10.0)
    bridge.pop_events()
    assert bridge.next_deadline() == 310.0
    assert bridge.expire(309.9) == 0
    assert bridge.expire(310.0) == 1
    assert bridge.pop_events() == [SourceCleared(mac(VISITOR), ClearReason.AGED)]
    assert bridge.next_deadline() is None
    assert bridge.lookup(VISITOR) is None


def test_visitor_moved_keeps_pairing() -> None:
    """A visitor that moves gets SourceCleared(MOVED), then a new RoamerDetected."""
    bridge, names = build_ap()
    wlan = names["wlan"][0]
    gre = names["gre:1"][0]
    frame = udp(VISITOR, ROUTER_B, VISITOR_IP, "8.8.8.8")
    assert bridge.process(wlan, None, frame, 0.0) == ((gre, 1),)
    assert bridge.process(gre, 2, frame, 1.0) == ((gre, 1),)
    events = bridge.pop_events()
    assert events == [
        RoamerDetected(mac(VISITOR), ip_to_int(VISITOR_IP), wlan, None, gre, 1),
        StationMoved(mac(VISITOR), wlan, None, gre, 2),
        SourceCleared(mac(VISITOR), ClearReason.MOVED),
        RoamerDetected(mac(VISITOR), ip_to_int(VISITOR_IP), gre, 2, gre, 1),
    ]


def test_bridges_independent() -> None:
    """Two bridge instances share no state: learning in one is not seen in the other."""
    first, names = build_ap()
    second, _ = build_ap()
    wlan, eth = names["wlan"][0], names["eth"][0]
    first.process(wlan, None, udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), 0.0)
    first.process(eth, None, udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), 0.0)
    assert first.process(eth, None, udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), 0.0) == ((wlan, None),)
    assert second.lookup(HOME) is None
    assert len(second.process(eth, None, udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), 0.0)) == 3
    assert second.counters()["ports"]["wlan"]["received"] == 0


def test_uplink_router_needs_mac_only_learning() -> None:
    """
    A router's routed packets carry foreign source addresses: on a port
    that looks stations up in the layer-3 database, the router itself
    would be taken for a visitor and its frames sent to the controller.
    """
    bridge = Bridge("ap")
    wlan = bridge.add_port("wlan")
    eth = bridge.add_port("eth")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    bridge.process(wlan, None, udp(HOME, ROUTER_A, HOME_IP, "8.8.8.8"), 0.0)
    assert bridge.process(eth, None, udp(ROUTER_A, HOME, "8.8.8.8", HOME_IP), 0.0) == ((gre, 1),)
