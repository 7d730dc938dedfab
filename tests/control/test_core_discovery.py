"""
Tests for SC discovery: the primary's registry, each SC's discovery client,
and the tunnels and L3 knowledge entries they ask for.
"""

from __future__ import annotations

import itertools
from ipaddress import IPv4Network

import pytest
from test_core_support import Network, address, network

from roaming.control.actions import (
    AddL3Entry,
    ConnectPeer,
    L3Match,
    RemoveL3Entry,
    Send,
    TunnelDown,
    TunnelUp,
)
from roaming.control.clientdb import DatabaseFullError
from roaming.control.discovery import (
    ClientState,
    DiscoveryClient,
    PrimaryRegistry,
    RegistrationState,
)
from roaming.control.messages import (
    MAX_SUBNETS,
    DiscoveryRound,
    ScAnnounce,
    ScRegister,
    ScWithdraw,
    UnexpectedMessageError,
)

PRIMARY = address("10.255.0.1")
SC2, SC3, SC4 = address("10.255.0.2"), address("10.255.0.3"), address("10.255.0.4")
NET_A, NET_B, NET_C = network("10.1.0.0/24"), network("10.2.0.0/24"), network("10.3.0.0/24")
TIMEOUT = 10.0


# The primary's registry.


def registry_with(*registrations) -> PrimaryRegistry:
    registry = PrimaryRegistry(PRIMARY, round_timeout=TIMEOUT)
    for sc, subnets in registrations:
        registry.register(sc, ScRegister(sc, subnets), 0.0)
    return registry


def test_registry_announces_both_ways() -> None:
    """
    A new SC is announced to every registered SC, and every registered SC
    to the new one.
    """
    registry = registry_with((PRIMARY, [NET_A]), (SC2, [NET_B]))

    actions = registry.register(SC3, ScRegister(SC3, [NET_C]), 1.0)

    assert actions == [
        Send(PRIMARY, ScAnnounce(SC3, (NET_C,))),
        Send(SC2, ScAnnounce(SC3, (NET_C,))),
        Send(SC3, ScAnnounce(PRIMARY, (NET_A,))),
        Send(SC3, ScAnnounce(SC2, (NET_B,))),
    ]
    assert registry.state_of(SC3) is RegistrationState.REGISTERED


def test_registry_unchanged_registration() -> None:
    """
    Registering again with the same subnets (a reconnection) sends the
    others to the SC but does not announce it again.
    """
    registry = registry_with((PRIMARY, [NET_A]), (SC2, [NET_B]))

    actions = registry.register(SC2, ScRegister(SC2, [NET_B]), 1.0)

    assert actions == [Send(SC2, ScAnnounce(PRIMARY, (NET_A,)))]


def test_registry_changed_subnets() -> None:
    """
    New subnets are announced to the other SCs.
    """
    registry = registry_with((PRIMARY, [NET_A]), (SC2, [NET_B]))

    actions = registry.register(SC2, ScRegister(SC2, [NET_B, NET_C]), 1.0)

    assert actions[0] == Send(PRIMARY, ScAnnounce(SC2, (NET_B, NET_C)))


def test_registry_rejects_other_address() -> None:
    """
    An SC may register only the address it connected from.
    """
    registry = registry_with()
    with pytest.raises(UnexpectedMessageError, match="only its own address"):
        registry.register(SC2, ScRegister(SC3, [NET_B]), 0.0)


def test_registry_lost_withdraws() -> None:
    """
    A lost SC is withdrawn from every other SC.
    """
    registry = registry_with((PRIMARY, [NET_A]), (SC2, [NET_B]), (SC3, [NET_C]))

    actions = registry.lost(SC2, 5.0)

    assert actions == [Send(PRIMARY, ScWithdraw(SC2)), Send(SC3, ScWithdraw(SC2))]
    assert SC2 not in registry.registered()
    assert registry.lost(SC4, 5.0) == []


def test_registry_round_withdraws_silent() -> None:
    """
    After a reconfiguration, an SC that does not register again before the
    deadline is withdrawn; one that does stays.
    """
    registry = registry_with((PRIMARY, [NET_A]), (SC2, [NET_B]), (SC3, [NET_C]))

    actions = registry.start_round(100.0)
    assert actions == [
        Send(PRIMARY, DiscoveryRound(1)),
        Send(SC2, DiscoveryRound(1)),
        Send(SC3, DiscoveryRound(1)),
    ]
    assert registry.next_deadline() == 100.0 + TIMEOUT

    registry.register(PRIMARY, ScRegister(PRIMARY, [NET_A], 1), 101.0)
    after_sc2 = registry.register(SC2, ScRegister(SC2, [NET_B], 1), 102.0)
    # SC2 is announced to the others again although its subnets did not
    # change, and it learns only the SCs that registered in this round.
    assert after_sc2 == [
        Send(PRIMARY, ScAnnounce(SC2, (NET_B,), 1)),
        Send(SC3, ScAnnounce(SC2, (NET_B,), 1)),
        Send(SC2, ScAnnounce(PRIMARY, (NET_A,), 1)),
    ]
    assert registry.expire(109.0) == []

    assert registry.expire(110.0) == [
        Send(PRIMARY, ScWithdraw(SC3, 1)),
        Send(SC2, ScWithdraw(SC3, 1)),
    ]
    assert sorted(registry.registered()) == [PRIMARY, SC2]
    assert registry.next_deadline() is None


def test_registry_bound() -> None:
    """
    The registry stores at most max_controllers SCs.
    """
    registry = PrimaryRegistry(PRIMARY, max_controllers=1)
    registry.register(PRIMARY, ScRegister(PRIMARY, [NET_A]), 0.0)
    with pytest.raises(DatabaseFullError, match="full with 1 SCs"):
        registry.register(SC2, ScRegister(SC2, [NET_B]), 0.0)


REGISTRY_EVENTS = ["register", "lost", "round", "deadline"]


def registry_in(state: RegistrationState) -> PrimaryRegistry:
    registry = PrimaryRegistry(PRIMARY, round_timeout=TIMEOUT)
    if state is not RegistrationState.ABSENT:
        registry.register(SC2, ScRegister(SC2, [NET_B]), 0.0)
    if state is RegistrationState.STALE:
        registry.start_round(0.0)
    return registry


def fire_registry(registry: PrimaryRegistry, event: str) -> None:
    if event == "register":
        registry.register(SC2, ScRegister(SC2, [NET_B]), 1.0)
    elif event == "lost":
        registry.lost(SC2, 1.0)
    elif event == "round":
        registry.start_round(1.0)
    else:
        registry.expire(1000.0)


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(RegistrationState, REGISTRY_EVENTS))
)
def test_registry_transition_table(state: RegistrationState, event: str) -> None:
    """
    Every (state, event) pair moves the SC to the state the table gives.
    A round or deadline does not touch an SC that is not registered.
    """
    registry = registry_in(state)
    assert registry.state_of(SC2) is state

    fire_registry(registry, event)

    expected = PrimaryRegistry.TRANSITIONS.get((state, event), state)
    assert registry.state_of(SC2) is expected


# The discovery client.


def client_in(state: ClientState) -> DiscoveryClient:
    client = DiscoveryClient(SC2, PRIMARY, [NET_B], round_timeout=TIMEOUT)
    if state is not ClientState.DISCONNECTED:
        client.primary_connected(0.0)
    if state is ClientState.REGISTERED:
        client.expire(TIMEOUT)
    return client


CLIENT_EVENTS = {
    "primary_connected": lambda client: client.primary_connected(1.0),
    "primary_lost": lambda client: client.primary_lost(1.0),
    "subnets_changed": lambda client: client.set_subnets([NET_B, NET_C], 1.0),
    "announce": lambda client: client.receive(PRIMARY, ScAnnounce(SC3, [NET_C]), 1.0),
    "withdraw": lambda client: client.receive(PRIMARY, ScWithdraw(SC3), 1.0),
    "round": lambda client: client.receive(PRIMARY, DiscoveryRound(4), 1.0),
    "deadline": lambda client: client.expire(1000.0),
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(ClientState, CLIENT_EVENTS)))
def test_client_transition_table(state: ClientState, event: str) -> None:
    """
    Every (state, event) pair in the table moves the client to the listed
    state. Every other pair raises, except a deadline when none is pending,
    which does nothing.
    """
    client = client_in(state)
    assert client.state is state
    expected = DiscoveryClient.TRANSITIONS.get((state, event))

    if expected is None and event == "deadline":
        assert client.expire(1000.0) == []
        assert client.state is state
    elif expected is None:
        with pytest.raises(UnexpectedMessageError):
            CLIENT_EVENTS[event](client)
    else:
        CLIENT_EVENTS[event](client)
        assert client.state is expected


def test_client_registers_on_connection() -> None:
    """
    Reaching the primary sends the registration with the SC's subnets.
    """
    client = DiscoveryClient(SC2, PRIMARY, [NET_B])
    assert client.primary_connected(0.0) == [Send(PRIMARY, ScRegister(SC2, (NET_B,)))]


def test_client_announce_brings_peer_up() -> None:
    """
    An announced peer gets a tunnel and a positive L3 entry per subnet. The
    lower address of a pair opens the control connection, unless one of
    them is the primary.
    """
    client = client_in(ClientState.REGISTERED)

    higher = client.receive(PRIMARY, ScAnnounce(SC3, [NET_C]), 1.0)
    lower = client.receive(PRIMARY, ScAnnounce(PRIMARY, [NET_A]), 1.0)

    assert higher == [
        TunnelUp(SC3),
        ConnectPeer(SC3),
        AddL3Entry(NET_C, SC3, L3Match.POSITIVE),
    ]
    # The primary is lower still, but the registration connection is there.
    assert lower == [TunnelUp(PRIMARY), AddL3Entry(NET_A, PRIMARY, L3Match.POSITIVE)]
    assert client.peers() == [PRIMARY, SC3]


def test_client_announce_changed_subnets() -> None:
    """
    A peer announced again with other subnets has its L3 entries replaced,
    and its tunnel stays.
    """
    client = client_in(ClientState.REGISTERED)
    client.receive(PRIMARY, ScAnnounce(SC3, [NET_C]), 1.0)

    actions = client.receive(PRIMARY, ScAnnounce(SC3, [NET_A]), 2.0)

    assert actions == [
        RemoveL3Entry(NET_C, SC3),
        AddL3Entry(NET_A, SC3, L3Match.POSITIVE),
    ]


def test_client_withdraw_brings_peer_down() -> None:
    """
    A withdrawn peer loses its L3 entries, then its tunnel.
    """
    client = client_in(ClientState.REGISTERED)
    client.receive(PRIMARY, ScAnnounce(SC3, [NET_C]), 1.0)

    actions = client.receive(PRIMARY, ScWithdraw(SC3), 2.0)

    assert actions == [RemoveL3Entry(NET_C, SC3), TunnelDown(SC3)]
    assert client.peers() == []
    assert client.receive(PRIMARY, ScWithdraw(SC3), 3.0) == []


def test_client_lowest_address_gets_entry() -> None:
    """
    Of two SCs serving one subnet, only the lower address gets the L3
    entry; when it goes, the other takes over.
    """
    client = client_in(ClientState.REGISTERED)
    client.receive(PRIMARY, ScAnnounce(SC4, [NET_A]), 1.0)
    assert client.l3_entries() == {NET_A: SC4}

    actions = client.receive(PRIMARY, ScAnnounce(SC3, [NET_A]), 2.0)
    assert actions == [
        TunnelUp(SC3),
        ConnectPeer(SC3),
        RemoveL3Entry(NET_A, SC4),
        AddL3Entry(NET_A, SC3, L3Match.POSITIVE),
    ]
    assert client.home_sc_for(address("10.1.0.9")) == SC3
    assert client.controllers_for(address("10.1.0.9")) == [SC3, SC4]

    actions = client.receive(PRIMARY, ScWithdraw(SC3), 3.0)
    assert actions == [
        RemoveL3Entry(NET_A, SC3),
        AddL3Entry(NET_A, SC4, L3Match.POSITIVE),
        TunnelDown(SC3),
    ]


def test_client_no_entry_for_own_subnet() -> None:
    """
    A subnet whose lowest-address SC is this SC gets no L3 entry: an SC
    never tunnels to itself.
    """
    client = client_in(ClientState.REGISTERED)
    assert client.receive(PRIMARY, ScAnnounce(SC3, [NET_B]), 1.0) == [
        TunnelUp(SC3),
        ConnectPeer(SC3),
    ]
    assert client.l3_entries() == {}
    assert client.home_sc_for(address("10.2.0.9")) == SC2


def test_client_round_withdraws_unannounced() -> None:
    """
    In a new round, a peer that the primary does not announce again before
    the deadline is withdrawn; an announced one stays.
    """
    client = client_in(ClientState.REGISTERED)
    client.receive(PRIMARY, ScAnnounce(SC3, [NET_C]), 1.0)
    client.receive(PRIMARY, ScAnnounce(SC4, [NET_A]), 1.0)

    assert client.receive(PRIMARY, DiscoveryRound(7), 50.0) == [
        Send(PRIMARY, ScRegister(SC2, (NET_B,), 7))
    ]
    assert client.receive(PRIMARY, ScAnnounce(SC4, [NET_A], 7), 51.0) == []
    assert client.next_deadline() == 50.0 + TIMEOUT
    assert client.expire(59.0) == []

    assert client.expire(60.0) == [RemoveL3Entry(NET_C, SC3), TunnelDown(SC3)]
    assert client.peers() == [SC4]
    assert client.state is ClientState.REGISTERED


def test_client_keeps_peers_without_primary() -> None:
    """
    Losing the primary keeps the peers and their tunnels; reconnecting
    registers again.
    """
    client = client_in(ClientState.REGISTERED)
    client.receive(PRIMARY, ScAnnounce(SC3, [NET_C]), 1.0)

    assert client.primary_lost(2.0) == []
    assert client.peers() == [SC3]
    assert client.primary_connected(3.0) == [Send(PRIMARY, ScRegister(SC2, (NET_B,)))]


def test_client_subnets_change_reregisters() -> None:
    """
    A change of the SC's own subnets is registered again; no change sends
    nothing.
    """
    client = client_in(ClientState.REGISTERED)
    assert client.set_subnets([NET_B], 1.0) == []
    assert client.set_subnets([NET_B, NET_C], 1.0) == [
        Send(PRIMARY, ScRegister(SC2, (NET_B, NET_C)))
    ]


def test_client_rejects_non_primary() -> None:
    """
    Discovery messages come only from the primary.
    """
    client = client_in(ClientState.REGISTERED)
    with pytest.raises(UnexpectedMessageError, match="not the primary"):
        client.receive(SC3, ScAnnounce(SC4, [NET_A]), 1.0)


# Discovery driving the data plane, end to end.


def test_tunnels_from_both_sides() -> None:
    """
    Once discovery completes, every SC has a tunnel to every other SC and
    to each of its APs, and each AP one to its SC, before any client roams.
    """
    net = Network(primary=str(PRIMARY))
    net.add_sc(str(PRIMARY))
    net.add_sc(str(SC2))
    net.add_sc(str(SC3))
    net.add_ap("10.1.0.11", str(PRIMARY), "10.1.0.0/24")
    net.add_ap("10.2.0.21", str(SC2), "10.2.0.0/24")

    assert net.bridge(str(PRIMARY)).tunnels == {SC2, SC3, address("10.1.0.11")}
    assert net.bridge(str(SC2)).tunnels == {PRIMARY, SC3, address("10.2.0.21")}
    assert net.bridge(str(SC3)).tunnels == {PRIMARY, SC2}
    assert net.bridge("10.1.0.11").tunnels == {PRIMARY}
    assert net.bridge("10.1.0.11").l3 == {NET_A: (PRIMARY, "negative")}
    assert net.bridge(str(SC3)).l3 == {
        NET_A: (PRIMARY, "positive"),
        NET_B: (SC2, "positive"),
    }
    # SC2 and SC3 reach the primary over their registration connections.
    assert net.bridge(str(PRIMARY)).connects == []
    assert net.bridge(str(SC2)).connects == [SC3]
    assert net.bridge(str(SC3)).connects == []


def test_lost_sc_withdrawn_everywhere() -> None:
    """
    When the primary loses an SC, every other SC brings its tunnel down and
    drops its L3 entries.
    """
    net = Network(primary=str(PRIMARY))
    net.add_sc(str(PRIMARY))
    net.add_sc(str(SC2))
    net.add_sc(str(SC3))
    net.add_ap("10.2.0.21", str(SC2), "10.2.0.0/24")

    net.lose(str(PRIMARY), str(SC2))

    for sc in (PRIMARY, SC3):
        assert SC2 not in net.bridge(str(sc)).tunnels
        assert NET_B not in net.bridge(str(sc)).l3


def test_lost_ap_tunnel_down() -> None:
    """
    An SC that loses an AP brings its tunnel down and, when the AP's subnet
    was its last, registers its subnets again.
    """
    net = Network(primary=str(PRIMARY))
    net.add_sc(str(PRIMARY))
    net.add_sc(str(SC2))
    net.add_ap("10.2.0.21", str(SC2), "10.2.0.0/24")
    net.take_log()

    net.lose(str(SC2), "10.2.0.21")

    assert address("10.2.0.21") not in net.bridge(str(SC2)).tunnels
    assert net.take_log()[0] == (str(SC2), str(PRIMARY), ScRegister(SC2, ()))
    assert net.bridge(str(PRIMARY)).l3 == {}


def test_reconfigure_round_end_to_end() -> None:
    """
    A reconfiguration on the primary runs a round in which every live SC
    registers again and keeps its peers.
    """
    net = Network(primary=str(PRIMARY))
    net.add_sc(str(PRIMARY))
    net.add_sc(str(SC2))
    net.add_ap("10.2.0.21", str(SC2), "10.2.0.0/24")
    primary = net.sc(str(PRIMARY))

    net.run(PRIMARY, primary.reconfigure(net.now))
    net.now += TIMEOUT
    net.run(PRIMARY, primary.expire(net.now))
    net.run(SC2, net.sc(str(SC2)).expire(net.now))

    assert net.sc(str(SC2)).discovery.round == 1
    assert net.sc(str(SC2)).discovery.peers() == [PRIMARY]
    assert net.bridge(str(PRIMARY)).l3 == {NET_B: (SC2, "positive")}
    with pytest.raises(UnexpectedMessageError, match="not the primary"):
        net.sc(str(SC2)).reconfigure(net.now)


def test_sc_with_more_subnets_than_one_registration() -> None:
    """
    An SC whose APs bring more subnets than one ScRegister carries keeps
    registering APs, registers the lowest MAX_SUBNETS subnets with the
    primary and reports the count and the limit.
    """
    net = Network(primary=str(PRIMARY))
    net.add_sc(str(PRIMARY))
    net.add_sc(str(SC2))
    count = MAX_SUBNETS + 3
    subnets = [IPv4Network((0x0A000000 + (n << 8), 24)) for n in range(count)]
    # Two APs keep the test fast: every registration resends all subnets.
    net.add_ap("10.0.0.10", str(SC2), *map(str, subnets[:MAX_SUBNETS]))
    net.add_ap(str(subnets[-1].network_address + 10), str(SC2), *map(str, subnets[MAX_SUBNETS:]))

    assert len(net.sc(str(SC2)).aps.nodes()) == 2
    assert net.sc(str(PRIMARY)).discovery.table.subnets_of(SC2) == tuple(subnets[:MAX_SUBNETS])
    problems = net.bridge(str(SC2)).problems
    assert problems, "no problem reported"
    key, message = problems[-1]
    assert key == "too-many-subnets"
    assert f"serves {count} subnets" in message
    assert f"more than the {MAX_SUBNETS}" in message


def test_sc_registers_thousand_subnets() -> None:
    """
    An SC whose APs bring 1,000 subnets registers them all.
    """
    net = Network(primary=str(PRIMARY))
    net.add_sc(str(PRIMARY))
    net.add_sc(str(SC2))
    subnets = [IPv4Network((0x0A000000 + (n << 8), 24)) for n in range(1000)]
    # 250 APs with four subnets each keep the test fast.
    for first in range(0, 1000, 4):
        ap = subnets[first].network_address + 10
        net.add_ap(str(ap), str(SC2), *map(str, subnets[first : first + 4]))

    assert net.sc(str(PRIMARY)).discovery.table.subnets_of(SC2) == tuple(subnets)
    assert net.bridge(str(SC2)).problems == []
