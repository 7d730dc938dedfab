# -*- test-case-name: tests.bridge.test_core -*-
"""
Tests for L{roaming.bridge.core}: bounds and eviction, counters, access
control, static entries, management calls, the snapshot API, robustness
against random frames, and equivalence with a plain learning bridge when
the layer-3 database is empty.
"""

import json
from ipaddress import IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roaming.bridge import (
    AddressLearned,
    Bridge,
    BridgeError,
    ClearReason,
    L3Entry,
    RoamerDetected,
    SourceCleared,
    ap_entries,
)
from roaming.bridge.l3 import sc_entries

from .frames import BROADCAST, arp_request, dhcp, ip_to_int, ipv4_udp, mac

A = "02:00:00:00:00:0a"
B = "02:00:00:00:00:0b"
C = "02:00:00:00:00:0c"
D = "02:00:00:00:00:0d"
VISITOR = "02:00:00:00:02:07"


def frame_from(src: str, dst: str = BROADCAST, src_ip: str = "10.1.0.5") -> bytes:
    return ipv4_udp(src, dst, src_ip, "10.1.255.255")


def three_ports(**bridge_options) -> tuple[Bridge, int, int, int]:
    """Return a bridge with plain ports 1 and 2 and aggregation port 3 (members 1, 2)."""
    bridge = Bridge("test", **bridge_options)
    first = bridge.add_port("p1")
    second = bridge.add_port("p2")
    aggregation = bridge.add_port("agg", aggregation=True)
    bridge.add_member(aggregation, 1)
    bridge.add_member(aggregation, 2)
    return bridge, first, second, aggregation


# -- FDB bound and eviction -------------------------------------------------


def test_eviction_oldest_learned() -> None:
    """A full FDB evicts the dynamic entry learned longest ago, even if recently seen."""
    bridge, p1, p2, _ = three_ports(max_entries=3)
    for station in (A, B, C):
        bridge.process(p1, None, frame_from(station), 0.0)
    bridge.process(p1, None, frame_from(A), 5.0)  # refreshing does not reorder
    bridge.process(p2, None, frame_from(D), 6.0)
    learned = {row["mac"] for row in bridge.fdb_rows()}
    assert learned == {B, C, D}
    assert bridge.counters()["fdb"]["evicted"] == 1
    assert bridge.counters()["fdb"]["entries"] == 3


def test_static_never_evicted() -> None:
    """With only static entries left, a new station is forwarded but not learned."""
    bridge, p1, p2, _ = three_ports(max_entries=2)
    bridge.add_static(A, p1)
    bridge.add_static(B, p2)
    result = bridge.process(p1, None, ipv4_udp(C, B, "10.1.0.9", "10.1.0.2"), 0.0)
    assert result == ((p2, None),)
    assert bridge.lookup(C) is None
    assert bridge.counters()["fdb"]["not_learned_full"] == 1
    with pytest.raises(BridgeError, match="full of 2 static entries"):
        bridge.add_static(C, p1)


def test_evicted_visitor_detected_again() -> None:
    """An evicted visitor gets SourceCleared(EVICTED), then is detected again."""
    bridge = Bridge(max_entries=1)
    wlan = bridge.add_port("wlan")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    visitor_frame = ipv4_udp(VISITOR, BROADCAST, "10.2.0.7", "255.255.255.255")
    assert bridge.process(wlan, None, visitor_frame, 0.0) == ((gre, 1),)
    bridge.process(wlan, None, frame_from(A), 1.0)
    assert bridge.process(wlan, None, visitor_frame, 2.0) == ((gre, 1),)
    events = bridge.pop_events()
    assert SourceCleared(mac(VISITOR), ClearReason.EVICTED) in events
    assert [type(e) for e in events].count(RoamerDetected) == 2


def visitor_bridge() -> tuple[Bridge, int, int]:
    """
    Return a bridge whose layer-3 database sends subnet 10.2.0.0/16 to
    tunnel 1 and 10.3.0.0/16 to tunnel 2 of its aggregation port, with
    10.1.0.0/16 as the home subnet that matches no entry.
    """
    bridge = Bridge()
    wlan = bridge.add_port("wlan")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 2)
    bridge.l3.replace(sc_entries([("10.2.0.0/16", gre, 1), ("10.3.0.0/16", gre, 2)]))
    return bridge, wlan, gre


def test_visitor_moves_to_other_foreign_subnet() -> None:
    """
    A settled visitor renewing an address of another foreign subnet changes
    its source egress.
    """
    bridge, wlan, gre = visitor_bridge()
    bridge.process(wlan, None, ipv4_udp(VISITOR, BROADCAST, "10.2.0.7", "10.2.255.255"), 0.0)
    assert bridge.pop_events() == [
        RoamerDetected(mac(VISITOR), ip_to_int("10.2.0.7"), wlan, None, gre, 1)
    ]

    renewal = dhcp(VISITOR, "request", src_ip="10.3.0.7", ciaddr="10.3.0.7")
    bridge.process(wlan, None, renewal, 1.0)

    assert bridge.pop_events() == [
        SourceCleared(mac(VISITOR), ClearReason.CHANGED),
        RoamerDetected(mac(VISITOR), ip_to_int("10.3.0.7"), wlan, None, gre, 2),
    ]
    entry = bridge.lookup(VISITOR)
    assert entry is not None
    assert entry.src_egress == ((gre, 2),)


def test_visitor_moves_back_home() -> None:
    """A settled visitor renewing a home address loses its source egress."""
    bridge, wlan, _ = visitor_bridge()
    bridge.process(wlan, None, ipv4_udp(VISITOR, BROADCAST, "10.2.0.7", "10.2.255.255"), 0.0)
    bridge.pop_events()

    renewal = dhcp(VISITOR, "request", src_ip="10.1.0.7", ciaddr="10.1.0.7")
    bridge.process(wlan, None, renewal, 1.0)

    assert bridge.pop_events() == [
        SourceCleared(mac(VISITOR), ClearReason.HOME),
        AddressLearned(mac(VISITOR), ip_to_int("10.1.0.7"), wlan, None),
    ]
    entry = bridge.lookup(VISITOR)
    assert entry is not None
    assert entry.src_egress is None
    assert entry.ip == ip_to_int("10.1.0.7")


def test_visitor_same_foreign_subnet_quiet() -> None:
    """A renewal in the same foreign subnet keeps the source egress without events."""
    bridge, wlan, gre = visitor_bridge()
    bridge.process(wlan, None, ipv4_udp(VISITOR, BROADCAST, "10.2.0.7", "10.2.255.255"), 0.0)
    bridge.pop_events()

    renewal = dhcp(VISITOR, "request", src_ip="10.2.0.8", ciaddr="10.2.0.8")
    bridge.process(wlan, None, renewal, 1.0)

    assert bridge.pop_events() == []
    entry = bridge.lookup(VISITOR)
    assert entry is not None
    assert entry.src_egress == ((gre, 1),)
    assert entry.ip == ip_to_int("10.2.0.8")


# -- counters ------------------------------------------------------------------


def test_drop_reasons_counted() -> None:
    """Each drop reason has its own counter, and each drop counts on its ingress port."""
    bridge = Bridge(max_frame_size=200)
    lonely = Bridge()
    solo = lonely.add_port("solo")
    wlan = bridge.add_port("wlan", access_controlled=True)
    eth = bridge.add_port("eth")
    good = ipv4_udp(A, B, "10.1.0.5", "10.1.0.6")
    cases = [
        (eth, good[:13], "runt"),
        (eth, good + bytes(200), "oversized"),
        (
            eth,
            ipv4_udp(B, A, "10.1.0.6", "10.1.0.5")[:6] + b"\x01" + bytes(5) + good[12:],
            "invalid_source",
        ),
        (eth, good[:6] + bytes(6) + good[12:], "invalid_source"),
        (eth, bytes.fromhex("0180c200000e") + good[6:], "reserved_group"),
        (wlan, good, "unauthorised_source"),
    ]
    for port, frame, reason in cases:
        assert bridge.process(port, None, frame, 0.0) == (), reason

    # B on eth, then a frame from B to itself: its destination is its ingress.
    bridge.process(eth, None, ipv4_udp(B, C, "10.1.0.6", "10.1.0.7"), 0.0)
    assert bridge.process(eth, None, ipv4_udp(C, B, "10.1.0.7", "10.1.0.6"), 0.0) == ()
    # A is unauthorised on wlan: frames to it are dropped too.
    assert bridge.process(eth, None, ipv4_udp(B, A, "10.1.0.6", "10.1.0.5"), 0.0) == ()
    assert lonely.process(solo, None, good, 0.0) == ()

    drops = bridge.counters()["drops"]
    assert drops == {
        "runt": 1,
        "oversized": 1,
        "invalid_source": 2,
        "reserved_group": 1,
        "same_segment": 1,
        "unauthorised_source": 1,
        "unauthorised_destination": 1,
        "no_egress": 0,
        "unknown_member": 0,
        "split_horizon": 0,
    }
    assert lonely.counters()["drops"]["no_egress"] == 1
    ports = bridge.counters()["ports"]
    assert ports["eth"]["dropped"] == 7
    assert ports["wlan"]["dropped"] == 1


def test_port_counters() -> None:
    """Received, forwarded, flooded and source-forwarded frames are counted per ingress port."""
    bridge = Bridge()
    wlan = bridge.add_port("wlan")
    eth = bridge.add_port("eth", l3_learning=False)
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    bridge.process(wlan, None, ipv4_udp(A, B, "10.1.0.5", "8.8.8.8"), 0.0)  # flood
    bridge.process(eth, None, ipv4_udp(B, A, "8.8.8.8", "10.1.0.5"), 0.0)  # forward
    bridge.process(wlan, None, ipv4_udp(A, B, "10.1.0.5", "8.8.8.8"), 0.0)  # forward
    bridge.process(wlan, None, ipv4_udp(VISITOR, B, "10.2.0.7", "8.8.8.8"), 0.0)  # source
    bridge.process(wlan, None, ipv4_udp(VISITOR, B, "10.2.0.7", "8.8.8.8"), 0.0)  # source
    ports = bridge.counters()["ports"]
    assert ports["wlan"] == {
        "received": 4,
        "forwarded": 1,
        "flooded": 1,
        "source_forwarded": 2,
        "dropped": 0,
    }
    assert ports["eth"]["received"] == 1
    assert ports["eth"]["forwarded"] == 1


def test_malformed_counted_and_bridged() -> None:
    """A frame with a malformed IPv4 header is counted and bridged like a plain bridge would."""
    bridge, p1, p2, agg = three_ports()
    frame = bytearray(ipv4_udp(A, BROADCAST, "10.1.0.5", "10.1.255.255"))
    frame[14] = 0x65  # version 6 inside an IPv4 EtherType
    result = bridge.process(p1, None, bytes(frame), 0.0)
    assert sorted(result, key=repr) == sorted([(p2, None), (agg, 1), (agg, 2)], key=repr)
    assert bridge.counters()["malformed"] == {"ipv4": 1}
    truncated_arp = arp_request(B, "10.1.0.6", "10.1.0.1")[:30]
    assert len(bridge.process(p2, None, truncated_arp, 0.0)) == 3
    assert bridge.counters()["malformed"] == {"ipv4": 1, "arp": 1}


def test_mac_only_port_not_inspected() -> None:
    """A port with l3_learning=False never classifies, so it counts no malformed header."""
    bridge = Bridge()
    uplink = bridge.add_port("uplink", l3_learning=False)
    bridge.add_port("wlan")
    frame = bytearray(ipv4_udp(A, BROADCAST, "10.1.0.5", "10.1.255.255"))
    frame[14] = 0x65
    assert len(bridge.process(uplink, None, bytes(frame), 0.0)) == 1
    assert bridge.counters()["malformed"] == {}
    assert bridge.lookup(A).settled


# -- access control --------------------------------------------------------------


def access_point() -> tuple[Bridge, int, int, int]:
    bridge = Bridge()
    wlan = bridge.add_port("wlan", access_controlled=True)
    eth = bridge.add_port("eth", l3_learning=False)
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    return bridge, wlan, eth, gre


def test_unauthorised_dropped_until_authorised() -> None:
    """A station learned on an access-controlled port passes only once authorised."""
    bridge, wlan, _eth, _ = access_point()
    frame = ipv4_udp(A, B, "10.1.0.5", "8.8.8.8")
    assert bridge.process(wlan, None, frame, 0.0) == ()
    bridge.authorise(A)
    assert len(bridge.process(wlan, None, frame, 0.0)) == 2
    bridge.deauthorise(A)
    assert bridge.process(wlan, None, frame, 0.0) == ()


def test_authorised_before_learning() -> None:
    """A station authorised before its first frame is learned authorised."""
    bridge, wlan, _eth, _ = access_point()
    bridge.authorise(A)
    assert len(bridge.process(wlan, None, ipv4_udp(A, B, "10.1.0.5", "8.8.8.8"), 0.0)) == 2
    assert bridge.lookup(A).authorised


def test_visitor_authorised_by_l3() -> None:
    """A visitor learned through layer-3 knowledge is authorised without authorise()."""
    bridge, wlan, _, gre = access_point()
    frame = arp_request(VISITOR, "10.2.0.7", "10.2.0.1")
    assert bridge.process(wlan, None, frame, 0.0) == ((gre, 1),)
    assert bridge.lookup(VISITOR).authorised
    bridge.deauthorise(VISITOR)
    assert bridge.process(wlan, None, frame, 0.0) == ((gre, 1),)


def test_discover_resets_authorisation() -> None:
    """DHCP DISCOVER resets a visitor to the port's default: unauthorised here."""
    bridge, wlan, _, _gre = access_point()
    bridge.process(wlan, None, arp_request(VISITOR, "10.2.0.7", "10.2.0.1"), 0.0)
    assert bridge.process(wlan, None, dhcp(VISITOR, "discover"), 1.0) == ()
    assert not bridge.lookup(VISITOR).authorised


def test_authorise_bound() -> None:
    """The set of authorised stations is bounded like the FDB."""
    bridge = Bridge(max_entries=1)
    bridge.authorise(A)
    bridge.authorise(A)
    with pytest.raises(BridgeError, match="already authorises 1 stations"):
        bridge.authorise(B)


# -- static entries and source clearing -----------------------------------------


def test_static_destination() -> None:
    """A static entry sends frames to its station to the given member, and never moves."""
    bridge, wlan, eth, gre = access_point()
    bridge.add_static(A, gre, 1)
    assert bridge.process(eth, None, ipv4_udp(B, A, "10.1.0.6", "10.1.0.5"), 0.0) == ((gre, 1),)
    # The station's own frames from elsewhere do not move it ...
    bridge.process(eth, None, ipv4_udp(A, B, "10.1.0.5", "10.1.0.6"), 1.0)
    assert bridge.process(eth, None, ipv4_udp(C, A, "10.1.0.7", "10.1.0.5"), 1.0) == ((gre, 1),)
    assert bridge.counters()["fdb"]["static_conflicts"] == 1
    # ... and on an access-controlled port they are dropped.
    assert bridge.process(wlan, None, ipv4_udp(A, B, "10.1.0.5", "10.1.0.6"), 1.0) == ()
    row = next(r for r in bridge.fdb_rows() if r["mac"] == A)
    assert row["static"] and row["last_seen"] is None
    bridge.remove_static(A)
    assert bridge.lookup(A) is None
    with pytest.raises(BridgeError, match="has no static entry"):
        bridge.remove_static(A)


def test_static_source_egress() -> None:
    """A static entry with a source egress sends its station's frames there."""
    bridge, wlan, _eth, gre = access_point()
    bridge.add_static(VISITOR, wlan, src_port=gre, src_agg_id=1)
    frame = ipv4_udp(VISITOR, B, "10.2.0.7", "10.2.0.1")
    assert bridge.process(wlan, None, frame, 0.0) == ((gre, 1),)
    with pytest.raises(BridgeError, match="its own port and ID"):
        bridge.add_static(VISITOR, gre, 1, src_port=gre, src_agg_id=1)
    with pytest.raises(BridgeError, match="invalid MAC address"):
        bridge.add_static("02:00", wlan)


def test_static_ignores_dhcp_reset() -> None:
    """DHCP DISCOVER does not clear a static entry's source egress: the control plane owns it."""
    bridge, wlan, _eth, gre = access_point()
    bridge.add_static(VISITOR, wlan, src_port=gre, src_agg_id=1)
    assert bridge.process(wlan, None, dhcp(VISITOR, "discover"), 0.0) == ((gre, 1),)
    assert bridge.lookup(VISITOR).src_egress == ((gre, 1),)
    assert bridge.pop_events() == []


def test_static_replaces_visitor() -> None:
    """A static entry replacing a learned visitor ends its source forwarding."""
    bridge, wlan, _eth, gre = access_point()
    bridge.process(wlan, None, arp_request(VISITOR, "10.2.0.7", "10.2.0.1"), 0.0)
    bridge.pop_events()
    bridge.add_static(VISITOR, gre, 1)
    assert bridge.pop_events() == [SourceCleared(mac(VISITOR), ClearReason.REMOVED)]


def test_clear_source() -> None:
    """clear_source() ends a visitor's source forwarding until it is learned again."""
    bridge, wlan, eth, gre = access_point()
    bridge.authorise(VISITOR)
    bridge.process(eth, None, ipv4_udp(B, VISITOR, "10.2.0.1", "10.2.0.7"), 0.0)
    frame = ipv4_udp(VISITOR, B, "10.2.0.7", "10.2.0.1")
    assert bridge.process(wlan, None, frame, 0.0) == ((gre, 1),)
    bridge.pop_events()
    assert bridge.clear_source(VISITOR)
    assert not bridge.clear_source(VISITOR)
    assert bridge.process(wlan, None, frame, 1.0) == ((eth, None),)
    assert bridge.pop_events() == [SourceCleared(mac(VISITOR), ClearReason.REMOVED)]


# -- ports and members --------------------------------------------------------------


def test_member_management() -> None:
    """Members are checked, bounded, and removing one flushes what used it."""
    bridge = Bridge(max_members=2)
    wlan = bridge.add_port("wlan")
    gre = bridge.add_port("gre", aggregation=True)
    with pytest.raises(BridgeError, match="not an aggregation port"):
        bridge.add_member(wlan, 1)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 2)
    with pytest.raises(BridgeError, match="already has 2 members"):
        bridge.add_member(gre, 3)
    bridge.l3.replace([L3Entry(IPv4Network("10.2.0.0/16"), gre, 1)])
    bridge.process(wlan, None, arp_request(VISITOR, "10.2.0.7", "10.2.0.1"), 0.0)
    bridge.process(gre, 2, frame_from(A), 0.0)
    bridge.pop_events()
    bridge.l3.replace([L3Entry(IPv4Network("10.2.0.0/16"), gre, 2)])
    bridge.remove_member(gre, 1)
    assert bridge.lookup(VISITOR) is None
    assert bridge.lookup(A) is not None
    assert bridge.pop_events() == [SourceCleared(mac(VISITOR), ClearReason.REMOVED)]
    assert bridge.process(wlan, None, frame_from(B), 1.0) == ((gre, 2),)
    with pytest.raises(BridgeError, match="has no member 1"):
        bridge.remove_member(gre, 1)


def test_remove_port() -> None:
    """A port referenced by the layer-3 database cannot go; others take their entries along."""
    bridge, p1, p2, agg = three_ports()
    bridge.l3.add("10.1.0.0/16", agg, 1, positive=False)
    with pytest.raises(BridgeError, match="layer-3 entries point at port"):
        bridge.remove_port(agg)
    bridge.process(p2, None, frame_from(A), 0.0)
    bridge.remove_port(p2)
    assert bridge.lookup(A) is None
    assert [p["name"] for p in bridge.ports()] == ["p1", "agg"]
    assert bridge.process(p1, None, frame_from(B), 0.0) == ((agg, 1), (agg, 2))
    with pytest.raises(BridgeError, match="not a port"):
        bridge.process(p2, None, frame_from(B), 0.0)


def test_aggregation_id_must_fit_port() -> None:
    """Passing an aggregation ID to a plain port, or none to an aggregation port, raises."""
    bridge, p1, _, agg = three_ports()
    with pytest.raises(BridgeError, match="does not fit port"):
        bridge.process(p1, 1, frame_from(A), 0.0)
    with pytest.raises(BridgeError, match="does not fit port"):
        bridge.process(agg, None, frame_from(A), 0.0)


# -- events and snapshots -------------------------------------------------------------


def test_event_queue_bound() -> None:
    """A full event queue drops its oldest event and counts it."""
    bridge = Bridge(max_events=2)
    wlan = bridge.add_port("wlan")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    for number in range(3):
        station = f"02:00:00:00:03:0{number}"
        bridge.process(wlan, None, arp_request(station, f"10.2.0.{number + 1}", "10.2.0.99"), 0.0)
    events = bridge.pop_events()
    assert [e.ip for e in events] == [ip_to_int("10.2.0.2"), ip_to_int("10.2.0.3")]
    assert bridge.counters()["fdb"]["events_dropped"] == 1
    assert bridge.pop_events() == []


def test_has_events_and_lookup() -> None:
    """has_events() tells whether pop_events() has work; lookup() takes any bytes."""
    bridge, p1, _, _ = three_ports()
    assert not bridge.has_events()
    bridge.process(p1, None, frame_from(A), 0.0)
    assert bridge.has_events()
    assert bridge.pop_events()
    assert not bridge.has_events()
    assert bridge.lookup(mac(A)) is bridge.lookup(A)
    assert bridge.lookup(b"\x01\x02") is None
    with pytest.raises(BridgeError, match="invalid MAC address"):
        bridge.lookup("01:02")


def test_next_deadline_never_late() -> None:
    """The deadline may be early after a refresh, and expire() then finds the real one."""
    bridge, p1, _, _ = three_ports(aging_time=10.0)
    assert bridge.next_deadline() is None
    bridge.process(p1, None, frame_from(A), 0.0)
    bridge.process(p1, None, frame_from(B), 4.0)
    assert bridge.next_deadline() == 10.0
    bridge.process(p1, None, frame_from(A), 8.0)
    assert bridge.expire(10.0) == 0
    assert bridge.next_deadline() == 14.0
    assert bridge.expire(14.0) == 1
    assert bridge.next_deadline() == 18.0


def test_snapshot_plain_data() -> None:
    """The snapshot is plain data that JSON can encode."""
    bridge, wlan, eth, gre = access_point()
    bridge.authorise(A)
    bridge.process(wlan, None, ipv4_udp(A, B, "10.1.0.5", "8.8.8.8"), 0.0)
    bridge.process(wlan, None, arp_request(VISITOR, "10.2.0.7", "10.2.0.1"), 1.0)
    bridge.add_static(C, eth)
    snapshot = bridge.snapshot(now=3.0)
    json.dumps(snapshot)
    rows = {row["mac"]: row for row in snapshot["fdb"]}
    assert rows[VISITOR] == {
        "mac": VISITOR,
        "port": wlan,
        "port_name": "wlan",
        "agg_id": None,
        "src_port": gre,
        "src_agg_id": 1,
        "ip": "10.2.0.7",
        "authorised": True,
        "static": False,
        "last_seen": 1.0,
        "age": 2.0,
    }
    assert rows[A]["ip"] == "10.1.0.5"
    assert rows[A]["src_port"] is None
    assert rows[C]["static"] is True
    assert snapshot["l3"][0]["match"] == "negative"
    assert snapshot["counters"]["ports"]["wlan"]["received"] == 2
    assert snapshot["ports"][2]["members"] == [1]


# -- robustness and equivalence ----------------------------------------------------------

STATIONS = [mac(f"02:00:00:00:00:{n:02x}") for n in range(1, 6)]
ODD_SOURCES = [mac("01:00:5e:00:00:01"), bytes(6)]
DESTINATIONS = [*STATIONS, mac(BROADCAST), mac("01:80:c2:00:00:00"), mac("33:33:00:00:00:01")]
ADDRESSES = ["10.1.0.5", "10.2.0.7", "10.3.0.9", "0.0.0.0", "169.254.1.1", "224.0.0.1"]


def _payload(kind: int, address: str, source: bytes) -> bytes:
    text = source.hex(":")
    if kind == 0:
        return ipv4_udp(text, BROADCAST, address, "10.1.255.255")[12:]
    if kind == 1:
        return arp_request(text, address, "10.1.0.1")[12:]
    if kind == 2:
        return dhcp(text, "discover")[12:]
    if kind == 3:
        return dhcp(text, "request", ciaddr=address, src_ip=address)[12:]
    return b"\x08\x00\x45\x00\x00"


frames = st.builds(
    lambda source, destination, kind, address, cut: (
        destination + source + _payload(kind, address, source)
    )[: cut or None],
    st.sampled_from(STATIONS + ODD_SOURCES),
    st.sampled_from(DESTINATIONS),
    st.integers(min_value=0, max_value=4),
    st.sampled_from(ADDRESSES),
    st.integers(min_value=0, max_value=80),
)
INGRESSES = [(1, None), (2, None), (3, 1), (3, 2)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(INGRESSES), frames | st.binary(max_size=120)), max_size=25)
)
def test_random_frames_never_raise(steps) -> None:
    """Any sequence of frames, well-formed or not, is processed without an exception."""
    bridge = Bridge(max_entries=4, max_events=8)
    bridge.add_port("wlan", access_controlled=True)
    bridge.add_port("eth")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 2)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    for now, ((port, agg_id), frame) in enumerate(steps):
        result = bridge.process(port, agg_id, frame, float(now))
        assert (port, agg_id) not in result
    bridge.expire(1000.0)
    json.dumps(bridge.snapshot())


class ReferenceBridge:
    """
    A plain IEEE 802.1D learning bridge without layer-3 knowledge, written
    as simply as possible to compare the real bridge against.
    """

    def __init__(self, ports: dict[int, list[int] | None]) -> None:
        self.ports = ports
        self.table: dict[bytes, tuple[int, int | None]] = {}

    def process(self, port: int, agg_id: int | None, frame: bytes) -> set:
        if len(frame) < 14:
            return set()
        destination, source = frame[0:6], frame[6:12]
        if source[0] & 1 or source == bytes(6):
            return set()
        if destination[:5] == b"\x01\x80\xc2\x00\x00" and destination[5] < 0x10:
            return set()
        self.table[source] = (port, agg_id)
        if not destination[0] & 1 and destination in self.table:
            egress = self.table[destination]
            return set() if egress == (port, agg_id) else {egress}
        out = set()
        for number, members in self.ports.items():
            if members is None:
                if number != port:
                    out.add((number, None))
            else:
                out |= {(number, m) for m in members if (number, m) != (port, agg_id)}
        return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(INGRESSES), frames), max_size=40))
def test_empty_l3_is_plain_bridge(steps) -> None:
    """With an empty layer-3 database, every frame goes where a plain learning bridge sends it."""
    bridge, _, _, _ = three_ports()
    reference = ReferenceBridge({1: None, 2: None, 3: [1, 2]})
    for now, ((port, agg_id), frame) in enumerate(steps):
        result = bridge.process(port, agg_id, frame, float(now))
        assert len(result) == len(set(result))
        assert set(result) == reference.process(port, agg_id, frame), frame.hex()
    assert not [e for e in bridge.pop_events() if isinstance(e, RoamerDetected)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(INGRESSES), frames, st.sampled_from([0.0, 1.0, 150.0])),
        max_size=40,
    )
)
def test_roamer_events_pair(steps) -> None:
    """
    Every RoamerDetected is closed by one SourceCleared, and the open ones
    are exactly the dynamic entries with a source egress.
    """
    bridge = Bridge(max_entries=4, max_events=10_000, aging_time=200.0)
    bridge.add_port("wlan")
    bridge.add_port("eth")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 2)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    visitors: set[bytes] = set()
    now = 0.0
    for (port, agg_id), frame, advance in steps:
        now += advance
        bridge.process(port, agg_id, frame, now)
        bridge.expire(now)
        for event in bridge.pop_events():
            if isinstance(event, RoamerDetected):
                assert event.mac not in visitors
                visitors.add(event.mac)
            elif isinstance(event, SourceCleared):
                assert event.mac in visitors
                visitors.remove(event.mac)
    with_source = {mac(row["mac"]) for row in bridge.fdb_rows() if row["src_port"] is not None}
    assert visitors == with_source


# -- access control cannot be bypassed ---------------------------------------------------

GATEWAY = "02:00:00:00:00:01"
INTRUDER = "02:00:00:00:00:66"


def test_unauthorised_source_cannot_take_over_entry() -> None:
    """
    A frame from an unauthorised station on an access-controlled port
    leaves another port's entry for that MAC where it is, and queues no
    event.
    """
    bridge, wlan, eth, _gre = access_point()
    bridge.authorise(A)
    bridge.process(eth, None, ipv4_udp(GATEWAY, BROADCAST, "10.1.0.1", "10.1.255.255"), 0.0)
    bridge.process(wlan, None, ipv4_udp(A, GATEWAY, "10.1.0.5", "10.1.0.1"), 1.0)
    bridge.pop_events()

    spoofed = ipv4_udp(GATEWAY, A, "10.1.0.1", "10.1.0.5")
    assert bridge.process(wlan, None, spoofed, 2.0) == ()

    assert bridge.lookup(GATEWAY).port == eth
    assert bridge.pop_events() == []
    assert bridge.counters()["drops"]["unauthorised_source"] == 1
    assert bridge.process(wlan, None, ipv4_udp(A, GATEWAY, "10.1.0.5", "10.1.0.1"), 3.0) == (
        (eth, None),
    )


def test_unauthorised_source_keeps_visitor_source() -> None:
    """A spoofed visitor MAC from an unauthorised station does not clear the visitor's SRC."""
    bridge = Bridge()
    wlan = bridge.add_port("wlan")
    guest = bridge.add_port("guest", access_controlled=True)
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    bridge.process(wlan, None, arp_request(VISITOR, "10.2.0.7", "10.2.0.1"), 0.0)
    bridge.pop_events()

    assert bridge.process(guest, None, frame_from(VISITOR, src_ip="10.1.0.66"), 1.0) == ()

    entry = bridge.lookup(VISITOR)
    assert entry.port == wlan
    assert entry.src_egress == ((gre, 1),)
    assert bridge.pop_events() == []


def test_unauthorised_source_never_evicts() -> None:
    """In a full FDB, an unauthorised newcomer is dropped and evicts nobody."""
    small = Bridge(max_entries=1)
    wlan = small.add_port("wlan", access_controlled=True)
    eth = small.add_port("eth", l3_learning=False)
    small.process(eth, None, ipv4_udp(GATEWAY, BROADCAST, "10.1.0.1", "10.1.255.255"), 0.0)

    assert small.process(wlan, None, ipv4_udp(INTRUDER, GATEWAY, "10.1.0.9", "10.1.0.1"), 1.0) == ()

    assert small.lookup(GATEWAY) is not None
    assert small.lookup(INTRUDER) is None
    assert small.counters()["fdb"]["evicted"] == 0
    assert small.counters()["drops"]["unauthorised_source"] == 1


def test_visitor_may_move_to_access_controlled_port() -> None:
    """A station that this frame makes a visitor is authorised, so it moves as before."""
    bridge = Bridge()
    radio_a = bridge.add_port("wlan0", access_controlled=True)
    radio_b = bridge.add_port("wlan1", access_controlled=True)
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    frame = arp_request(VISITOR, "10.2.0.7", "10.2.0.1")
    assert bridge.process(radio_a, None, frame, 0.0) == ((gre, 1),)

    assert bridge.process(radio_b, None, frame, 1.0) == ((gre, 1),)
    assert bridge.lookup(VISITOR).port == radio_b


def test_full_static_fdb_keeps_access_control() -> None:
    """A station left unlearned by an FDB full of static entries is still checked."""
    bridge = Bridge(max_entries=1)
    wlan = bridge.add_port("wlan", access_controlled=True)
    eth = bridge.add_port("eth")
    bridge.add_static(GATEWAY, eth)
    frame = ipv4_udp(INTRUDER, GATEWAY, "10.1.0.9", "10.1.0.1")

    assert bridge.process(wlan, None, frame, 0.0) == ()
    assert bridge.counters()["drops"]["unauthorised_source"] == 1

    bridge.authorise(INTRUDER)
    assert bridge.process(wlan, None, frame, 1.0) == ((eth, None),)
    assert bridge.lookup(INTRUDER) is None


# -- members, split horizon and parameters ------------------------------------------------


def test_remove_member_referenced_by_l3() -> None:
    """A member that a layer-3 entry points at cannot be removed, like a port."""
    bridge, _, _, agg = three_ports()
    bridge.l3.add("10.1.0.0/16", agg, 1, positive=False)
    with pytest.raises(BridgeError, match="layer-3 entries point at member 1"):
        bridge.remove_member(agg, 1)
    assert bridge.ports()[2]["members"] == [1, 2]
    bridge.l3.remove("10.1.0.0/16")
    bridge.remove_member(agg, 1)
    assert bridge.ports()[2]["members"] == [2]


def test_remove_member_takes_static_entries() -> None:
    """Removing a member deletes the static entries that use it, as removing a port does."""
    bridge, p1, _p2, agg = three_ports()
    bridge.add_static(A, agg, 1)
    bridge.add_static(B, p1, src_port=agg, src_agg_id=1)
    bridge.add_static(C, agg, 2)
    bridge.remove_member(agg, 1)
    assert bridge.lookup(A) is None
    assert bridge.lookup(B) is None
    assert bridge.lookup(C) is not None


def test_egress_must_be_member() -> None:
    """Layer-3 and static entries may point only at members that exist."""
    bridge, p1, _, agg = three_ports()
    with pytest.raises(BridgeError, match="has no member 9"):
        bridge.l3.add("10.2.0.0/16", agg, 9)
    with pytest.raises(BridgeError, match="has no member 9"):
        bridge.add_static(A, agg, 9)
    with pytest.raises(BridgeError, match="has no member 9"):
        bridge.add_static(A, p1, src_port=agg, src_agg_id=9)
    assert len(bridge.l3) == 0
    assert bridge.lookup(A) is None


def test_unknown_member_ingress_dropped() -> None:
    """A frame from an aggregation ID that is not a member is dropped before learning."""
    bridge, p1, p2, agg = three_ports()
    assert bridge.process(agg, 9, frame_from(A), 0.0) == ()
    assert bridge.lookup(A) is None
    assert bridge.counters()["drops"]["unknown_member"] == 1
    bridge.add_member(agg, 9)
    assert sorted(bridge.process(agg, 9, frame_from(A), 1.0), key=repr) == sorted(
        [(p1, None), (p2, None), (agg, 1), (agg, 2)], key=repr
    )


def split_horizon_bridge() -> tuple[Bridge, int, int]:
    """Return a bridge with an uplink and a split-horizon mesh port (members 1, 2)."""
    bridge = Bridge()
    eth = bridge.add_port("eth")
    mesh = bridge.add_port("mesh", aggregation=True, split_horizon=True)
    bridge.add_member(mesh, 1)
    bridge.add_member(mesh, 2)
    return bridge, eth, mesh


def test_split_horizon_blocks_known_unicast() -> None:
    """Split horizon drops known unicast between members, not only floods."""
    bridge, eth, mesh = split_horizon_bridge()
    bridge.process(mesh, 1, ipv4_udp(A, BROADCAST, "10.1.0.5", "10.1.255.255"), 0.0)
    bridge.process(mesh, 2, ipv4_udp(B, BROADCAST, "10.1.0.6", "10.1.255.255"), 0.0)
    to_b = ipv4_udp(A, B, "10.1.0.5", "10.1.0.6")

    assert bridge.process(mesh, 1, to_b, 1.0) == ()
    assert bridge.process(mesh, 1, to_b, 2.0) == ()
    assert bridge.counters()["drops"]["split_horizon"] == 2
    assert bridge.process(eth, None, ipv4_udp(C, B, "10.1.0.7", "10.1.0.6"), 3.0) == ((mesh, 2),)


def test_split_horizon_blocks_static_destination() -> None:
    """A static entry on another member is out of reach from a member too."""
    bridge, _eth, mesh = split_horizon_bridge()
    bridge.add_static(B, mesh, 2)
    assert bridge.process(mesh, 1, ipv4_udp(A, B, "10.1.0.5", "10.1.0.6"), 0.0) == ()
    assert bridge.counters()["drops"]["split_horizon"] == 1


def test_split_horizon_static_source_rejected() -> None:
    """A static source egress from one member of a split-horizon port to another is rejected."""
    bridge, _eth, mesh = split_horizon_bridge()
    with pytest.raises(BridgeError, match="another member of split-horizon port"):
        bridge.add_static(A, mesh, 1, src_port=mesh, src_agg_id=2)


def test_member_to_member_without_split_horizon() -> None:
    """Without split horizon, known unicast between members is forwarded."""
    bridge, _, _, agg = three_ports()
    bridge.process(agg, 2, frame_from(B), 0.0)
    assert bridge.process(agg, 1, ipv4_udp(A, B, "10.1.0.5", "10.1.0.6"), 1.0) == ((agg, 2),)
    assert bridge.process(agg, 1, ipv4_udp(A, B, "10.1.0.5", "10.1.0.6"), 2.0) == ((agg, 2),)


@pytest.mark.parametrize("size", [-1, 0, 10, 59, 1.5e3])
def test_max_frame_size_checked(size) -> None:
    """max_frame_size must be an int of at least 60 bytes, the minimum Ethernet frame."""
    with pytest.raises(BridgeError, match="max_frame_size"):
        Bridge(max_frame_size=size)


def test_max_frame_size_minimum_accepted() -> None:
    """A 60-byte bound accepts a 60-byte frame and drops a 61-byte one."""
    bridge, p1, _, _ = three_ports(max_frame_size=60)
    frame = ipv4_udp(A, BROADCAST, "10.1.0.5", "10.1.255.255", payload=bytes(18))
    assert len(frame) == 60
    assert len(bridge.process(p1, None, frame, 0.0)) == 3
    assert bridge.process(p1, None, frame + b"\x00", 0.0) == ()


@pytest.mark.parametrize("convert", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_frame_buffer_types(convert) -> None:
    """A bytearray or memoryview frame is processed like the same bytes."""
    bridge, p1, p2, _ = three_ports()
    bridge.process(p2, None, frame_from(B), 0.0)
    frame = ipv4_udp(A, B, "10.1.0.5", "10.1.0.6")
    assert bridge.process(p1, None, convert(frame), 1.0) == ((p2, None),)
    assert bridge.process(p1, None, convert(frame), 2.0) == ((p2, None),)
    assert type(bridge.lookup(A).mac) is bytes


def test_frame_of_other_type_rejected() -> None:
    """A frame that is not a bytes-like object raises BridgeError, a caller error."""
    bridge, p1, _, _ = three_ports()
    with pytest.raises(BridgeError, match="frame must be bytes"):
        bridge.process(p1, None, frame_from(A).hex(), 0.0)
    with pytest.raises(BridgeError, match="frame must be bytes"):
        bridge.process(p1, None, None, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(INGRESSES), frames), max_size=30))
def test_unauthorised_frames_change_no_other_entry(steps) -> None:
    """
    Whatever came before, a frame dropped as unauthorised at the
    access-controlled port leaves every other station's entry as it was,
    and the source's own entry too when it was learned elsewhere.
    """
    bridge = Bridge(max_entries=4, max_events=10_000)
    wlan = bridge.add_port("wlan", access_controlled=True)
    bridge.add_port("eth")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.add_member(gre, 2)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    bridge.authorise(STATIONS[0])
    for now, ((port, agg_id), frame) in enumerate(steps):
        before = {row["mac"]: row for row in bridge.fdb_rows()}
        dropped = bridge.counters()["drops"]["unauthorised_source"]
        bridge.pop_events()
        bridge.process(port, agg_id, frame, float(now))
        if port != wlan or bridge.counters()["drops"]["unauthorised_source"] == dropped:
            continue

        source = frame[6:12].hex(":")
        after = {row["mac"]: row for row in bridge.fdb_rows()}
        for station, row in before.items():
            if station != source or row["port"] != wlan:
                assert after.get(station) == row, station
        assert {event.mac.hex(":") for event in bridge.pop_events()} <= {source}
