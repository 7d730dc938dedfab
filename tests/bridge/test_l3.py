# -*- test-case-name: tests.bridge.test_l3 -*-
"""
Tests for L{roaming.bridge.l3}: ordered lookup, positive and negative
entries, the management API and the role presets.
"""

import ipaddress

import pytest

from roaming.bridge import (
    Bridge,
    BridgeError,
    L3Database,
    L3DatabaseError,
    L3Entry,
    RoamerDetected,
    ap_entries,
    sc_entries,
)
from roaming.bridge.l3 import is_unicast_host_address

from .frames import ip_to_int, ipv4_udp


def ip(text: str) -> int:
    return ip_to_int(text)


def test_empty_matches_nothing() -> None:
    """An empty database matches no address."""
    database = L3Database()
    assert not database
    assert database.lookup(ip("10.1.2.3")) is None


def test_positive_entry() -> None:
    """A positive entry matches addresses inside its subnet only."""
    database = L3Database()
    database.add("10.2.0.0/16", 3, 21)
    assert database.lookup(ip("10.2.200.1")) == (3, 21)
    assert database.lookup(ip("10.3.0.1")) is None


def test_negative_entry() -> None:
    """A negative entry matches addresses outside its subnet only."""
    database = L3Database()
    database.add("10.1.0.0/16", 3, 1, positive=False)
    assert database.lookup(ip("10.1.0.5")) is None
    assert database.lookup(ip("10.2.0.7")) == (3, 1)
    assert database.lookup(ip("192.0.2.1")) == (3, 1)


def test_first_match_wins() -> None:
    """With overlapping subnets, the earlier entry decides."""
    database = L3Database()
    database.add("10.0.0.0/8", 1)
    database.add("10.2.0.0/16", 2)
    assert database.lookup(ip("10.2.0.7")) == (1, None)
    database.add("10.2.0.0/24", 3, position=0)
    assert database.lookup(ip("10.2.0.7")) == (3, None)
    assert database.lookup(ip("10.2.1.7")) == (1, None)
    assert [str(e.network) for e in database.entries()] == [
        "10.2.0.0/24",
        "10.0.0.0/8",
        "10.2.0.0/16",
    ]


def test_positive_before_trailing_negative() -> None:
    """Positive entries are tried first; the trailing negative takes the rest."""
    database = L3Database()
    database.replace(
        sc_entries(
            [("10.2.0.0/16", 2, 21), ("10.3.0.0/16", 2, 22)],
            local_subnet="10.1.0.0/16",
            default_port=2,
            default_agg_id=99,
        )
    )
    assert database.lookup(ip("10.2.0.7")) == (2, 21)
    assert database.lookup(ip("10.3.0.7")) == (2, 22)
    assert database.lookup(ip("10.9.0.7")) == (2, 99)
    assert database.lookup(ip("10.1.0.7")) is None


def test_several_negative_entries_share_local() -> None:
    """An address inside any negative entry's subnet is local to all of them."""
    database = L3Database()
    database.replace(ap_entries(["10.1.0.0/16", "172.16.5.0/24"], 3, 1))
    assert database.lookup(ip("10.1.0.5")) is None
    assert database.lookup(ip("172.16.5.9")) is None
    assert database.lookup(ip("10.2.0.7")) == (3, 1)


def test_ap_preset() -> None:
    """The access point preset is one negative entry per subnet, towards the controller."""
    entries = ap_entries([ipaddress.IPv4Network("10.1.0.0/16")], 3, 1)
    assert entries == [L3Entry(ipaddress.IPv4Network("10.1.0.0/16"), 3, 1, positive=False)]


def test_sc_preset() -> None:
    """The controller preset keeps the neighbours' order, positive, and no negative by default."""
    entries = sc_entries([("10.3.0.0/16", 2, 22), ("10.2.0.0/16", 2, 21)])
    assert [(str(e.network), e.egress, e.positive) for e in entries] == [
        ("10.3.0.0/16", (2, 22), True),
        ("10.2.0.0/16", (2, 21), True),
    ]


def test_sc_preset_half_default() -> None:
    """A trailing negative entry needs both its subnet and its port."""
    with pytest.raises(L3DatabaseError, match="both local_subnet and default_port"):
        sc_entries([], local_subnet="10.1.0.0/16")


def test_modify_keeps_position() -> None:
    """modify() changes egress and kind in place."""
    database = L3Database()
    database.add("10.2.0.0/16", 1)
    database.add("10.3.0.0/16", 2, 5)
    database.modify("10.2.0.0/16", port=4, agg_id=7, positive=False)
    assert [(str(e.network), e.egress, e.positive) for e in database.entries()] == [
        ("10.2.0.0/16", (4, 7), False),
        ("10.3.0.0/16", (2, 5), True),
    ]
    database.modify("10.3.0.0/16", agg_id=6)
    assert database.entries()[1].egress == (2, 6)
    database.modify("10.3.0.0/16", positive=False)
    assert database.entries()[1].egress == (2, 6)


def test_remove() -> None:
    """remove() deletes one entry and returns it."""
    database = L3Database()
    database.add("10.2.0.0/16", 1)
    removed = database.remove(ipaddress.IPv4Network("10.2.0.0/16"))
    assert removed.port == 1
    assert database.lookup(ip("10.2.0.7")) is None


def test_errors() -> None:
    """Duplicates, missing subnets, bad subnets and a full database are rejected."""
    database = L3Database(max_entries=1)
    database.add("10.2.0.0/16", 1)
    with pytest.raises(L3DatabaseError, match="already has an entry"):
        database.add("10.2.0.0/16", 2)
    with pytest.raises(L3DatabaseError, match="is full"):
        database.add("10.3.0.0/16", 2)
    with pytest.raises(L3DatabaseError, match="has no entry"):
        database.remove("10.9.0.0/16")
    with pytest.raises(L3DatabaseError, match="has no entry"):
        database.modify("10.9.0.0/16", port=1)
    with pytest.raises(L3DatabaseError, match="invalid IPv4 subnet"):
        database.remove("10.2.0.1/16")


def test_replace_is_atomic() -> None:
    """A rejected replace() leaves the database as it was."""
    database = L3Database()
    database.add("10.2.0.0/16", 1)
    duplicate = [L3Entry(ipaddress.IPv4Network("10.5.0.0/16"), 1)] * 2
    with pytest.raises(L3DatabaseError, match="same subnet"):
        database.replace(duplicate)
    assert [str(e.network) for e in database.entries()] == ["10.2.0.0/16"]


def test_bridge_checks_egress() -> None:
    """Through a bridge, an entry names an existing port, and a member of an aggregation port."""
    bridge = Bridge()
    plain = bridge.add_port("eth")
    aggregation = bridge.add_port("gre", aggregation=True)
    with pytest.raises(BridgeError, match="not a port"):
        bridge.l3.add("10.2.0.0/16", 99)
    with pytest.raises(BridgeError, match="give an int aggregation ID"):
        bridge.l3.add("10.2.0.0/16", aggregation)
    with pytest.raises(BridgeError, match="must be None"):
        bridge.l3.add("10.2.0.0/16", plain, 4)
    with pytest.raises(BridgeError, match="has no member 4"):
        bridge.l3.add("10.2.0.0/16", aggregation, 4)
    with pytest.raises(BridgeError, match="has no member 4"):
        bridge.l3.replace(ap_entries(["10.1.0.0/16"], aggregation, 4))
    assert len(bridge.l3) == 0


def test_bridge_rows() -> None:
    """The bridge lists its layer-3 database as plain data."""
    bridge = Bridge()
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    assert bridge.l3_rows() == [
        {"network": "10.1.0.0/16", "port": gre, "agg_id": 1, "match": "negative"}
    ]


@pytest.mark.parametrize(
    "address, usable",
    [
        ("0.0.0.0", False),
        ("0.1.2.3", False),
        ("127.0.0.1", False),
        ("169.254.10.1", False),
        ("224.0.0.251", False),
        ("255.255.255.255", False),
        ("10.2.0.7", True),
        ("169.253.0.1", True),
        ("223.255.255.254", True),
    ],
)
def test_unicast_host_address(address: str, usable: bool) -> None:
    """Only addresses that can belong to a subnet are looked up."""
    assert is_unicast_host_address(ip(address)) is usable


def test_link_local_station_not_visitor() -> None:
    """A station with a link-local address is no visitor, though outside the local subnet."""
    bridge = Bridge()
    wlan = bridge.add_port("wlan")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    frame = ipv4_udp("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "169.254.3.4", "169.254.255.255")
    assert bridge.process(wlan, None, frame, 0.0) == ((gre, 1),)
    entry = bridge.lookup("02:00:00:00:00:01")
    assert entry is not None
    assert entry.src_egress is None


def test_change_relearns_stations() -> None:
    """After the database changes, a known station is looked up again on its next frame."""
    bridge = Bridge()
    wlan = bridge.add_port("wlan")
    eth = bridge.add_port("eth")
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    frame = ipv4_udp("02:00:00:00:00:01", "02:00:00:00:00:02", "10.2.0.7", "8.8.8.8")
    bridge.process(
        eth, None, ipv4_udp("02:00:00:00:00:02", "02:00:00:00:00:01", "8.8.8.8", "10.2.0.7"), 0.0
    )
    assert bridge.process(wlan, None, frame, 0.0) == ((eth, None),)
    bridge.pop_events()
    bridge.l3.add("10.1.0.0/16", gre, 1, positive=False)
    assert bridge.process(wlan, None, frame, 1.0) == ((gre, 1),)
    assert bridge.pop_events() == [
        RoamerDetected(b"\x02\x00\x00\x00\x00\x01", ip("10.2.0.7"), wlan, None, gre, 1)
    ]
