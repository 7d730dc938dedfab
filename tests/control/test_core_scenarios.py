"""
Roaming scenarios run in memory through the SC and AP role objects.

Each test builds a small network (L{test_core_support.Network}), feeds radio
and bridge events to the APs, and asserts the exact control messages
exchanged, the client databases and the bridge state that the actions ask
for.

The standard topology: SC1 (10.255.0.1, the primary) controls AP11 and AP12
in subnet A (10.1.0.0/24); SC2 (10.255.0.2) controls AP21 and AP22 in
subnet B (10.2.0.0/24). Client M1 (10.1.0.100) and M2 (10.1.0.101) live in
A; client M3 (10.2.0.100) lives in B.
"""

from __future__ import annotations

import pytest
from test_core_support import Network, address, mac, network

from roaming.control.actions import (
    AddStaticEntry,
    ClearSourceEntry,
    RemoveStaticEntry,
    SetSourceEntry,
    SetStationVlan,
)
from roaming.control.messages import (
    AddTraveler,
    ApAddTraveler,
    ApDeleteTraveler,
    DeleteTraveler,
    DeleteVisitor,
    IappAdd,
    IappMove,
    MscAddTraveler,
    MscDeleteTraveler,
    MscDeleteVisitor,
    NoHomeAccessPointError,
    NoHomeControllerError,
    UnexpectedMessageError,
)

SC1, SC2, SC3 = "10.255.0.1", "10.255.0.2", "10.255.0.3"
AP11, AP12, AP13 = "10.1.0.11", "10.1.0.12", "10.1.0.13"
AP21, AP22 = "10.2.0.21", "10.2.0.22"
AP31 = "10.3.0.31"
SUBNET_A, SUBNET_B, SUBNET_C = "10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"
M1, M2, M3 = mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"), mac("02:00:00:00:00:03")
IP1, IP2, IP3 = address("10.1.0.100"), address("10.1.0.101"), address("10.2.0.100")


def notices(log):
    """
    Return the logged messages except the shared client details
    (L{IappAdd}), which L{test_iapp_add_shared} covers.
    """
    return [entry for entry in log if not isinstance(entry[2], IappAdd)]


def standard_network(**sc_options) -> Network:
    net = Network(primary=SC1)
    net.add_sc(SC1, **sc_options)
    net.add_sc(SC2, **sc_options)
    net.add_ap(AP11, SC1, SUBNET_A)
    net.add_ap(AP12, SC1, SUBNET_A)
    net.add_ap(AP21, SC2, SUBNET_B)
    net.add_ap(AP22, SC2, SUBNET_B)
    net.take_log()
    return net


def associate_at_home(net: Network, ap: str, client: bytes, ip) -> None:
    net.event(ap, "station_associated", client)
    net.event(ap, "client_ip_seen", client, ip, prefix=24)


@pytest.fixture
def net() -> Network:
    return standard_network()


@pytest.fixture
def roamed(net: Network) -> Network:
    """
    The standard network after M1 associated at home with AP11 and roamed
    to AP21.
    """
    associate_at_home(net, AP11, M1, IP1)
    net.event(AP21, "station_associated", M1)
    net.take_log()
    return net


# First association at home.


def test_first_association_at_home_messages(net: Network) -> None:
    """
    An AP reports a new client without an address, then with its address,
    and reports to the SC that the client is at home.
    """
    net.event(AP11, "station_associated", M1)
    assert notices(net.take_log()) == []

    net.event(AP11, "client_ip_seen", M1, IP1, prefix=24)
    assert notices(net.take_log()) == [(AP11, SC1, ApDeleteTraveler(M1, IP1))]


def test_first_association_at_home_database(net: Network) -> None:
    """
    At home the current, last visited and home AP agree, and the home SC is
    the SC controlling that AP.
    """
    associate_at_home(net, AP11, M1, IP1)
    record = net.sc(SC1).db.get(M1)
    assert record.ip == IP1
    assert record.prefix == 24
    assert record.current_ap == address(AP11)
    assert record.last_visited_ap == address(AP11)
    assert record.home_ap == address(AP11)
    assert record.home_sc == address(SC1)
    assert net.sc(SC1).db.travelers() == []


def test_first_association_layer2_update(net: Network) -> None:
    """
    The layer 2 update waits for the address when the cache has none, and
    the 802.11F ADD-notify goes out at association.
    """
    net.event(AP11, "station_associated", M1)
    assert net.bridge(AP11).layer2_updates == []
    assert net.bridge(AP11).add_notifies == [M1]

    net.event(AP11, "client_ip_seen", M1, IP1)
    assert net.bridge(AP11).layer2_updates == [M1]


def test_iapp_add_shared(net: Network) -> None:
    """
    The client details reach every other AP and SC, so a foreign AP can
    tunnel the client before its first frame.
    """
    net.event(AP11, "station_associated", M1)
    net.take_log()
    net.event(AP11, "client_ip_seen", M1, IP1, prefix=24)

    shared = IappAdd(M1, IP1, 24, ap=address(AP11))
    assert net.take_log() == [
        (AP11, SC1, shared),
        (AP11, SC1, ApDeleteTraveler(M1, IP1)),
        (SC1, AP12, shared),
        (SC1, SC2, shared),
        (SC2, AP21, shared),
        (SC2, AP22, shared),
    ]
    for ap in (AP12, AP21, AP22):
        assert net.ap(ap).db.get(M1).ip == IP1
    assert net.sc(SC2).db.get(M1).current_ap is None


def test_no_sharing_without_cache_option() -> None:
    """
    With client cache sharing off, an SC keeps the details to itself.
    """
    net = standard_network(share_client_cache=False)
    associate_at_home(net, AP11, M1, IP1)
    receivers = {receiver for _, receiver, _ in net.take_log()}
    assert receivers == {SC1}


# Roam to a foreign subnet.


def test_roam_foreign_messages(net: Network) -> None:
    """
    With the address cached, the foreign AP reports a traveler at once, and
    the notice chain reaches the home AP.
    """
    associate_at_home(net, AP11, M1, IP1)
    net.take_log()

    net.event(AP21, "station_associated", M1)

    assert notices(net.take_log()) == [
        (AP21, SC2, ApAddTraveler(M1, IP1, prefix=24)),
        (SC2, SC1, MscAddTraveler(M1, IP1, address(SC2), prefix=24)),
        (SC1, AP11, IappMove(M1, address(AP21))),
        (SC1, AP11, AddTraveler(M1)),
    ]


def test_roam_foreign_bridges(roamed: Network) -> None:
    """
    Each of the four nodes on the path tunnels the traveler's traffic the
    right way.
    """
    # Foreign AP: everything from the client goes to its SC.
    assert roamed.bridge(AP21).source == {M1: address(SC2)}
    assert roamed.bridge(AP21).layer2_updates == []
    # Foreign SC: from the client to the home SC, to the client via AP21.
    assert roamed.bridge(SC2).source == {M1: address(SC1)}
    assert roamed.bridge(SC2).static == {M1: address(AP21)}
    # Home SC: from the client to the home AP, to the client via SC2.
    assert roamed.bridge(SC1).source == {M1: address(AP11)}
    assert roamed.bridge(SC1).static == {M1: address(SC2)}
    # Home AP: frames for the client, and floods, go to SC1.
    assert roamed.bridge(AP11).static == {M1: address(SC1)}
    assert roamed.bridge(AP11).flood_to == {address(SC1)}
    assert roamed.bridge(AP11).layer2_updates == [M1, M1]
    assert roamed.bridge(AP11).removed_stations == [M1]


def test_roam_foreign_databases(roamed: Network) -> None:
    """
    The home SC lists a traveler, the foreign SC a visitor, and the home AP
    keeps its place in the record.
    """
    traveler = roamed.sc(SC1).db.get_traveler(M1)
    assert traveler.foreign_sc == address(SC2)
    assert traveler.home_ap == address(AP11)
    visitor = roamed.sc(SC2).db.get_visitor(M1)
    assert visitor.ap == address(AP21)
    assert visitor.home_sc == address(SC1)

    foreign_record = roamed.sc(SC2).db.get(M1)
    assert foreign_record.current_ap == address(AP21)
    assert foreign_record.last_visited_ap == address(AP21)
    assert foreign_record.home_sc == address(SC1)
    home_record = roamed.sc(SC1).db.get(M1)
    assert home_record.home_ap == address(AP11)
    assert home_record.current_ap is None
    assert home_record.last_visited_ap == address(AP11)
    assert roamed.ap(AP11).travelers == {M1: 0}
    assert M1 not in roamed.ap(AP11).stations


def test_roam_foreign_without_cache() -> None:
    """
    Without a cached address, the foreign AP waits for the bridge to see the
    client's first IP packet, and leaves source forwarding to the bridge's
    L3 knowledge.
    """
    net = standard_network(share_client_cache=False)
    associate_at_home(net, AP11, M1, IP1)
    net.take_log()
    net.event(AP21, "station_associated", M1)
    assert notices(net.take_log()) == []

    net.event(AP21, "client_ip_seen", M1, IP1, prefix=24)

    assert notices(net.take_log()) == [
        (AP21, SC2, ApAddTraveler(M1, IP1, prefix=24)),
        (SC2, SC1, MscAddTraveler(M1, IP1, address(SC2), prefix=24)),
        (SC1, AP11, AddTraveler(M1)),
    ]
    assert net.bridge(AP21).source == {}
    assert net.ap(AP21).visitors.keys() == {M1}


# Roam within the foreign subnet.


def test_roam_within_foreign_subnet(roamed: Network) -> None:
    """
    The foreign SC moves the visitor from AP21 to AP22; the home SC keeps
    the traveler and tunnels on without a new AddTraveler.
    """
    roamed.event(AP22, "station_associated", M1)

    assert notices(roamed.take_log()) == [
        (AP22, SC2, ApAddTraveler(M1, IP1, prefix=24)),
        (SC2, AP21, IappMove(M1, address(AP22))),
        (SC2, AP21, DeleteVisitor(M1)),
        (SC2, SC1, MscAddTraveler(M1, IP1, address(SC2), prefix=24)),
    ]
    assert roamed.sc(SC2).db.get_visitor(M1).ap == address(AP22)
    assert roamed.sc(SC2).db.get(M1).last_visited_ap == address(AP22)
    assert roamed.sc(SC1).db.get(M1).home_ap == address(AP11)
    assert roamed.bridge(SC2).static == {M1: address(AP22)}
    assert roamed.bridge(AP21).source == {}
    assert roamed.bridge(AP21).removed_stations == [M1]
    assert roamed.bridge(AP22).source == {M1: address(SC2)}
    assert roamed.bridge(AP11).static == {M1: address(SC1)}


def test_roam_within_foreign_subnet_vlans() -> None:
    """
    Entries for a visit end on the VLAN of that visit, even when the client
    moves on to another VLAN.
    """
    net = standard_network()
    associate_at_home(net, AP11, M1, IP1)
    net.event(AP21, "station_associated", M1, vlan_id=100)
    net.bridge(SC2).history.clear()

    net.event(AP22, "station_associated", M1, vlan_id=200)

    history = net.bridge(SC2).history
    assert history[:2] == [RemoveStaticEntry(M1, 100), ClearSourceEntry(M1, 100)]
    assert AddStaticEntry(M1, address(AP22), 200) in history
    assert SetSourceEntry(M1, address(SC1), 200) in history


def test_cached_vlan_kept_on_fast_roam(net: Network) -> None:
    """
    A station that associates without a VLAN ID gets the VLAN ID cached
    from its earlier association, which the notices then carry.
    """
    net.event(AP11, "station_associated", M1, vlan_id=100)
    net.event(AP11, "client_ip_seen", M1, IP1, prefix=24)
    net.take_log()
    net.bridge(AP21).history.clear()

    net.event(AP21, "station_associated", M1)

    assert net.bridge(AP21).station_vlans == {M1: 100}
    assert net.bridge(AP21).history[0] == SetStationVlan(M1, 100)
    assert (SC1, AP11, AddTraveler(M1, vlan_id=100)) in notices(net.take_log())
    assert net.bridge(AP11).station_vlans == {}


def test_own_association_cached() -> None:
    """
    An AP caches the VLAN ID and PMK data of its own associations, so a
    fast return keeps the VLAN even without shared details.
    """
    net = standard_network(share_client_cache=False)
    net.event(AP11, "station_associated", M1, vlan_id=100, pmk_cache=b"k" * 48)
    net.event(AP11, "station_disassociated", M1)

    net.event(AP11, "station_associated", M1)

    record = net.ap(AP11).db.get(M1)
    assert record.vlan_id == 100
    assert record.pmk_cache == b"k" * 48
    assert net.bridge(AP11).station_vlans == {M1: 100}


def test_new_vlan_replaces_cached(net: Network) -> None:
    """
    A VLAN ID from the association itself wins over the cached one.
    """
    net.event(AP11, "station_associated", M1, vlan_id=100)
    net.event(AP12, "station_associated", M1, vlan_id=200)

    assert net.bridge(AP12).station_vlans == {}
    assert net.ap(AP12).stations[M1].vlan_id == 200


# Return home.


def test_return_same_home_ap(roamed: Network) -> None:
    """
    Back at AP11, the AP stops tunnelling by itself and the home SC ends the
    visit at the foreign SC.
    """
    roamed.event(AP11, "station_associated", M1)

    assert notices(roamed.take_log()) == [
        (AP11, SC1, ApDeleteTraveler(M1, IP1)),
        (SC1, SC2, MscDeleteVisitor(M1)),
        (SC2, AP21, IappMove(M1, address(AP11))),
        (SC2, AP21, DeleteVisitor(M1)),
    ]
    assert roamed.sc(SC1).db.get_traveler(M1) is None
    assert roamed.sc(SC2).db.get_visitor(M1) is None
    record = roamed.sc(SC1).db.get(M1)
    assert (record.current_ap, record.last_visited_ap, record.home_ap) == (
        address(AP11),
        address(AP11),
        address(AP11),
    )
    assert roamed.bridge(AP11).static == {}
    assert roamed.bridge(AP11).flood_to == set()
    assert roamed.bridge(AP11).layer2_updates == [M1, M1, M1]
    assert roamed.bridge(SC1).static == {}
    assert roamed.bridge(SC1).source == {}
    assert roamed.bridge(SC2).static == {}
    assert roamed.bridge(SC2).source == {}
    assert roamed.bridge(AP21).source == {}


def test_return_home_other_vlan() -> None:
    """
    The home side removes a traveler's entries on the VLAN they were made
    on, even when the client comes back on another VLAN.
    """
    net = standard_network()
    associate_at_home(net, AP11, M1, IP1)
    net.event(AP21, "station_associated", M1, vlan_id=100)
    net.bridge(SC1).history.clear()

    net.event(AP12, "station_associated", M1, vlan_id=200)

    history = net.bridge(SC1).history
    assert RemoveStaticEntry(M1, 100) in history
    assert ClearSourceEntry(M1, 100) in history
    assert net.ap(AP11).travelers == {}


def test_return_different_home_ap(roamed: Network) -> None:
    """
    Back at AP12, the home SC sends the old home AP DeleteTraveler and
    AP12 becomes the home AP.
    """
    roamed.event(AP12, "station_associated", M1)

    assert notices(roamed.take_log()) == [
        (AP12, SC1, ApDeleteTraveler(M1, IP1)),
        (SC1, SC2, MscDeleteVisitor(M1)),
        (SC1, AP11, DeleteTraveler(M1)),
        (SC2, AP21, IappMove(M1, address(AP12))),
        (SC2, AP21, DeleteVisitor(M1)),
    ]
    assert roamed.sc(SC1).db.get(M1).home_ap == address(AP12)
    assert roamed.ap(AP11).travelers == {}
    assert roamed.bridge(AP11).static == {}
    assert roamed.bridge(AP11).flood_to == set()
    assert roamed.bridge(AP12).layer2_updates == [M1]
    assert roamed.bridge(SC1).source == {}


# Two clients.


def test_two_clients_same_home_subnet(net: Network) -> None:
    """
    The home AP floods into its SC tunnel while any traveler remains, and
    one client's return leaves the other's tunnelling alone.
    """
    associate_at_home(net, AP11, M1, IP1)
    associate_at_home(net, AP11, M2, IP2)
    net.event(AP21, "station_associated", M1)
    net.event(AP22, "station_associated", M2)
    assert net.ap(AP11).travelers == {M1: 0, M2: 0}
    assert net.bridge(AP11).static == {M1: address(SC1), M2: address(SC1)}
    assert net.bridge(SC2).static == {M1: address(AP21), M2: address(AP22)}

    net.event(AP11, "station_associated", M1)

    assert net.ap(AP11).travelers == {M2: 0}
    assert net.bridge(AP11).static == {M2: address(SC1)}
    assert net.bridge(AP11).flood_to == {address(SC1)}
    assert net.sc(SC2).db.get_visitor(M1) is None
    assert net.sc(SC2).db.get_visitor(M2).ap == address(AP22)
    assert net.bridge(SC1).source == {M2: address(AP11)}

    net.event(AP12, "station_associated", M2)
    assert net.bridge(AP11).flood_to == set()
    assert net.sc(SC1).db.travelers() == []


def test_two_clients_different_home_subnets(net: Network) -> None:
    """
    Two clients cross in opposite directions: each SC is home SC for one
    and foreign SC for the other.
    """
    associate_at_home(net, AP11, M1, IP1)
    associate_at_home(net, AP21, M3, IP3)
    net.take_log()

    net.event(AP21, "station_associated", M1)
    net.event(AP11, "station_associated", M3)

    log = notices(net.take_log())
    assert (SC2, SC1, MscAddTraveler(M1, IP1, address(SC2), prefix=24)) in log
    assert (SC1, SC2, MscAddTraveler(M3, IP3, address(SC1), prefix=24)) in log
    assert (SC1, AP11, AddTraveler(M1)) in log
    assert (SC2, AP21, AddTraveler(M3)) in log
    assert net.sc(SC1).db.get_traveler(M1).foreign_sc == address(SC2)
    assert net.sc(SC1).db.get_visitor(M3).home_sc == address(SC2)
    assert net.sc(SC2).db.get_traveler(M3).foreign_sc == address(SC1)
    assert net.sc(SC2).db.get_visitor(M1).home_sc == address(SC1)
    # AP11 is the home AP of M1 and the foreign AP of M3 at once.
    assert net.bridge(AP11).static == {M1: address(SC1)}
    assert net.bridge(AP11).source == {M3: address(SC1)}
    assert net.bridge(SC1).static == {M1: address(SC2), M3: address(AP11)}
    assert net.bridge(SC1).source == {M1: address(AP11), M3: address(SC2)}


# Several SCs in one subnet.


def multi_sc_network(**sc_options) -> Network:
    """
    The standard network plus SC3, which also serves subnet A with AP13.
    """
    net = standard_network(**sc_options)
    net.add_sc(SC3, **sc_options)
    net.add_ap(AP13, SC3, SUBNET_A)
    net.take_log()
    return net


def test_multi_sc_home_is_lowest_address() -> None:
    """
    With SC1 and SC3 in subnet A, SC1 (the lower address) gets the L3
    knowledge entries and the traveler notices for subnet A.
    """
    net = multi_sc_network()
    assert net.bridge(SC2).l3 == {network(SUBNET_A): (address(SC1), "positive")}
    assert net.sc(SC2).discovery.home_sc_for(IP1) == address(SC1)

    associate_at_home(net, AP13, M1, IP1)
    record = net.sc(SC3).db.get(M1)
    assert record.home_sc == address(SC3)
    assert record.home_ap == address(AP13)
    net.take_log()

    net.event(AP21, "station_associated", M1)

    log = notices(net.take_log())
    assert log == [
        (AP21, SC2, ApAddTraveler(M1, IP1, prefix=24)),
        (SC2, SC1, MscAddTraveler(M1, IP1, address(SC2), prefix=24)),
        (SC3, AP13, IappMove(M1, address(AP21))),
        (SC1, SC3, MscDeleteTraveler(M1)),
        (SC1, AP11, AddTraveler(M1)),
    ]
    # SC1 controls no AP13, so it designates its own AP in subnet A.
    assert net.sc(SC1).db.get_traveler(M1).home_ap == address(AP11)


def test_multi_sc_return_home_other_sc() -> None:
    """
    Returning home to an AP of SC3 makes SC3 notify SC1, which stops its
    designated home AP and ends the visit at the foreign SC. The foreign SC
    has already dropped the visitor on the shared association.
    """
    net = multi_sc_network()
    associate_at_home(net, AP13, M1, IP1)
    net.event(AP21, "station_associated", M1)
    net.take_log()

    net.event(AP13, "station_associated", M1)

    log = notices(net.take_log())
    assert log == [
        (AP13, SC3, ApDeleteTraveler(M1, IP1)),
        (SC3, SC1, MscDeleteTraveler(M1, returned_to=address(AP13))),
        (SC2, AP21, IappMove(M1, address(AP13))),
        (SC2, AP21, DeleteVisitor(M1)),
        (SC1, SC2, MscDeleteVisitor(M1)),
        (SC1, AP11, DeleteTraveler(M1)),
    ]
    assert net.sc(SC1).db.travelers() == []
    assert net.sc(SC2).db.visitors() == []
    assert net.bridge(AP11).static == {}
    assert net.bridge(SC2).source == {}


def test_multi_sc_return_home_without_sharing() -> None:
    """
    Without shared client details, the home SC's MscDeleteVisitor alone ends
    the visit at the foreign SC.
    """
    net = multi_sc_network(share_client_cache=False)
    associate_at_home(net, AP13, M1, IP1)
    net.event(AP21, "station_associated", M1)
    net.event(AP21, "client_ip_seen", M1, IP1, prefix=24)
    net.take_log()

    net.event(AP13, "station_associated", M1)

    assert notices(net.take_log()) == [
        (AP13, SC3, ApDeleteTraveler(M1, IP1)),
        (SC3, SC1, MscDeleteTraveler(M1, returned_to=address(AP13))),
        (SC1, SC2, MscDeleteVisitor(M1)),
        (SC1, AP11, DeleteTraveler(M1)),
        (SC2, AP21, DeleteVisitor(M1)),
    ]
    assert net.sc(SC2).db.visitors() == []
    assert net.bridge(SC2).static == {}
    assert net.bridge(AP21).removed_stations == [M1]


# One SC for several subnets.


def single_sc_network() -> Network:
    net = Network(primary=SC1)
    net.add_sc(SC1)
    net.add_ap(AP11, SC1, SUBNET_A)
    net.add_ap(AP31, SC1, SUBNET_C)
    net.take_log()
    return net


def test_one_sc_several_subnets_no_self_tunnel() -> None:
    """
    An SC that is both foreign and home SC processes the notice itself: no
    message to itself, no tunnel to itself.
    """
    net = single_sc_network()
    associate_at_home(net, AP11, M1, IP1)
    net.take_log()

    net.event(AP31, "station_associated", M1)

    assert notices(net.take_log()) == [
        (AP31, SC1, ApAddTraveler(M1, IP1, prefix=24)),
        (SC1, AP11, IappMove(M1, address(AP31))),
        (SC1, AP11, AddTraveler(M1)),
    ]
    assert address(SC1) not in net.bridge(SC1).tunnels
    assert net.bridge(SC1).l3 == {}
    assert net.bridge(SC1).static == {M1: address(AP31)}
    assert net.bridge(SC1).source == {M1: address(AP11)}
    traveler = net.sc(SC1).db.get_traveler(M1)
    assert traveler.foreign_sc == address(SC1)
    assert net.sc(SC1).db.get_visitor(M1).ap == address(AP31)


def test_one_sc_several_subnets_return() -> None:
    """
    The client's return home ends the visit and the traveler on one SC.
    """
    net = single_sc_network()
    associate_at_home(net, AP11, M1, IP1)
    net.event(AP31, "station_associated", M1)
    net.take_log()

    net.event(AP11, "station_associated", M1)

    assert notices(net.take_log()) == [
        (AP11, SC1, ApDeleteTraveler(M1, IP1)),
        (SC1, AP31, IappMove(M1, address(AP11))),
        (SC1, AP31, DeleteVisitor(M1)),
    ]
    assert net.sc(SC1).db.travelers() == []
    assert net.sc(SC1).db.visitors() == []
    assert net.bridge(SC1).static == {}
    assert net.bridge(SC1).source == {}
    assert net.bridge(AP31).source == {}


# Proactive tunnelling.


def test_proactive_confirmed_by_first_packet(roamed: Network) -> None:
    """
    A first IP packet that matches the cached address changes nothing but
    reports the confirmed address.
    """
    roamed.event(AP21, "client_ip_seen", M1, IP1, prefix=24)

    assert notices(roamed.take_log()) == []
    assert roamed.bridge(AP21).source == {M1: address(SC2)}
    assert roamed.sc(SC1).db.get_traveler(M1) is not None


def test_proactive_stopped_by_home_address(roamed: Network) -> None:
    """
    A first IP packet from subnet B (the client took a new address) stops
    the proactive tunnelling, and the old home side drops the traveler.
    """
    new_ip = address("10.2.0.55")

    roamed.event(AP21, "client_ip_seen", M1, new_ip, prefix=24)

    assert notices(roamed.take_log()) == [
        (AP21, SC2, ApDeleteTraveler(M1, new_ip)),
        (SC2, SC1, MscDeleteTraveler(M1, returned_to=address(AP21))),
        (SC1, SC2, MscDeleteVisitor(M1)),
        (SC1, AP11, DeleteTraveler(M1)),
    ]
    assert roamed.bridge(AP21).source == {}
    assert roamed.bridge(AP21).layer2_updates == [M1]
    assert roamed.bridge(SC2).source == {}
    assert roamed.bridge(SC2).static == {}
    assert roamed.bridge(AP11).static == {}
    assert roamed.sc(SC2).db.get(M1).ip == new_ip
    assert roamed.sc(SC2).db.get(M1).home_ap == address(AP21)
    assert roamed.sc(SC1).db.travelers() == []


def test_proactive_other_foreign_address() -> None:
    """
    A first packet from a third subnet re-reports the traveler with the
    real address, to that subnet's home SC.
    """
    net = standard_network()
    net.add_sc(SC3)
    net.add_ap(AP31, SC3, SUBNET_C)
    associate_at_home(net, AP11, M1, IP1)
    net.event(AP21, "station_associated", M1)
    net.take_log()
    new_ip = address("10.3.0.77")

    net.event(AP21, "client_ip_seen", M1, new_ip, prefix=24)

    log = notices(net.take_log())
    assert log[:2] == [
        (AP21, SC2, ApAddTraveler(M1, new_ip, prefix=24)),
        (SC2, SC3, MscAddTraveler(M1, new_ip, address(SC2), prefix=24)),
    ]
    assert net.sc(SC3).db.get_traveler(M1).home_ap == address(AP31)
    assert net.bridge(SC2).source == {M1: address(SC3)}


# Designated home AP.


def test_designated_home_ap(net: Network) -> None:
    """
    A client never seen at home gets the home SC's lowest-address AP in its
    subnet as designated home AP.
    """
    net.event(AP21, "station_associated", M2)
    net.event(AP21, "client_ip_seen", M2, IP2, prefix=24)

    assert (SC1, AP11, AddTraveler(M2)) in notices(net.take_log())
    assert net.sc(SC1).db.get_traveler(M2).home_ap == address(AP11)
    assert net.sc(SC1).db.get(M2).home_ap == address(AP11)


def test_home_via_lan_without_ap() -> None:
    """
    A home SC with no AP in the client's subnet but a LAN port on it puts
    the traveler's traffic on the LAN itself.
    """
    net = Network(primary=SC1)
    net.add_sc(SC1, SUBNET_A, lan_subnets=[network(SUBNET_A)])
    net.add_sc(SC2)
    net.add_ap(AP21, SC2, SUBNET_B)
    net.take_log()

    net.event(AP21, "station_associated", M1)
    net.event(AP21, "client_ip_seen", M1, IP1, prefix=24)

    traveler = net.sc(SC1).db.get_traveler(M1)
    assert traveler.home_ap is None
    assert net.bridge(SC1).source == {M1: None}
    assert net.bridge(SC1).static == {M1: address(SC2)}


def test_no_home_ap_raises() -> None:
    """
    A home SC with neither an AP nor a LAN port in the client's subnet
    rejects the notice.
    """
    net = Network(primary=SC1)
    net.add_sc(SC1, SUBNET_A)
    net.add_sc(SC2)
    net.add_ap(AP21, SC2, SUBNET_B)

    net.event(AP21, "station_associated", M1)
    with pytest.raises(NoHomeAccessPointError) as raised:
        net.event(AP21, "client_ip_seen", M1, IP1, prefix=24)
    assert "02:00:00:00:00:01" in str(raised.value)


def test_unknown_subnet_raises(net: Network) -> None:
    """
    A roaming client from a subnet no SC serves is rejected at the foreign
    SC.
    """
    net.event(AP21, "station_associated", M1)
    with pytest.raises(NoHomeControllerError):
        net.event(AP21, "client_ip_seen", M1, address("192.0.2.9"))


# 802.11F and unexpected peers.


def test_iapp_add_notify_removes_local_station(net: Network) -> None:
    """
    An ADD-notify from another AP for a local station removes it; one for
    an unknown station or from the AP itself changes nothing.
    """
    associate_at_home(net, AP11, M1, IP1)
    ap = net.ap(AP11)

    net.event(AP11, "iapp_add_notify_received", M2, address("10.1.0.50"))
    net.event(AP11, "iapp_add_notify_received", M1, address(AP11))
    assert net.bridge(AP11).removed_stations == []

    net.event(AP11, "iapp_add_notify_received", M1, address("10.1.0.50"))
    assert net.bridge(AP11).removed_stations == [M1]
    assert M1 not in ap.stations


def test_iapp_add_notify_ends_visit(roamed: Network) -> None:
    """
    A visitor that moved to a third-party AP on the same LAN loses its
    source forwarding entry.
    """
    roamed.event(AP21, "iapp_add_notify_received", M1, address("10.2.0.50"))

    assert roamed.bridge(AP21).removed_stations == [M1]
    assert roamed.bridge(AP21).source == {}


def test_traveler_notice_from_unknown_peer(net: Network) -> None:
    """
    A traveler notice from a peer that is not a registered AP raises.
    """
    with pytest.raises(UnexpectedMessageError):
        net.sc(SC1).receive(address("10.9.9.9"), ApAddTraveler(M1, IP3), net.now)


def test_add_traveler_from_home_ap_subnet(net: Network) -> None:
    """
    An AP reporting a traveler whose address is in its own subnet raises.
    """
    with pytest.raises(UnexpectedMessageError):
        net.sc(SC1).receive(address(AP11), ApAddTraveler(M1, IP1), net.now)


def test_foreign_sc_must_name_itself(net: Network) -> None:
    """
    An SC may not send MscAddTraveler on behalf of another SC.
    """
    notice = MscAddTraveler(M1, IP1, address(SC1))
    with pytest.raises(UnexpectedMessageError):
        net.sc(SC1).receive(address(SC2), notice, net.now)


def test_ap_rejects_message_from_other_sc(net: Network) -> None:
    """
    An AP takes messages only from its own SC.
    """
    with pytest.raises(UnexpectedMessageError):
        net.ap(AP11).receive(address(SC2), AddTraveler(M1), net.now)


def test_ap_rejects_sc_only_message(net: Network) -> None:
    """
    An AP does not accept a message meant for an SC.
    """
    with pytest.raises(UnexpectedMessageError):
        net.ap(AP11).receive(address(SC1), MscDeleteVisitor(M1), net.now)


def test_delete_notices_idempotent(roamed: Network) -> None:
    """
    Delete notices for a client that is not listed change nothing.
    """
    sc1, ap12 = roamed.sc(SC1), roamed.ap(AP12)
    assert sc1.receive(address(SC2), MscDeleteTraveler(M2), roamed.now) == []
    assert sc1.receive(address(SC2), MscDeleteVisitor(M2), roamed.now) == []
    assert ap12.receive(address(SC1), DeleteTraveler(M2), roamed.now) == []
    assert ap12.receive(address(SC1), DeleteVisitor(M2), roamed.now) == []
    assert ap12.receive(address(SC1), IappMove(M2, address(AP11)), roamed.now) == []


def test_disassociation_ends_visit(roamed: Network) -> None:
    """
    A visitor that disassociates loses its source forwarding entry at the
    AP.
    """
    roamed.event(AP21, "station_disassociated", M1)

    assert roamed.bridge(AP21).source == {}
    assert M1 not in roamed.ap(AP21).visitors
    assert roamed.take_log() == []


def test_ap_reconnect_gets_travelers_again(roamed: Network) -> None:
    """
    A home AP that reconnects to its SC is sent AddTraveler again for each
    traveler it tunnels, in case it restarted meanwhile.
    """
    roamed.lose(SC1, AP11)
    roamed.lose(AP11, SC1)
    assert address(AP11) not in roamed.bridge(SC1).tunnels
    roamed.take_log()

    roamed.run(address(SC1), roamed.sc(SC1).peer_connected(address(AP11), roamed.now))
    roamed.run(address(AP11), roamed.ap(AP11).controller_connected(roamed.now))

    assert (SC1, AP11, AddTraveler(M1)) in roamed.take_log()
    assert address(AP11) in roamed.bridge(SC1).tunnels
    assert roamed.bridge(AP11).flood_to == {address(SC1)}


def test_ap_reconnect_reports_stations(net: Network) -> None:
    """
    After its SC connection comes back, an AP registers again and reports
    every associated station.
    """
    associate_at_home(net, AP11, M1, IP1)
    net.lose(AP11, SC1)
    assert net.bridge(AP11).tunnels == set()
    assert net.bridge(AP11).l3 == {}
    net.take_log()

    net.run(address(AP11), net.ap(AP11).controller_connected(net.now))

    log = net.take_log()
    assert log[0][2].ap == address(AP11)
    assert (AP11, SC1, IappAdd(M1, IP1, 24, ap=address(AP11))) in log
    assert net.bridge(AP11).tunnels == {address(SC1)}
