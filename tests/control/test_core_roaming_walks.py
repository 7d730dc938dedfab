"""
Random roaming walks through a network that has every topology at once:
several SCs in one subnet, one SC serving several subnets, and plain one-SC
subnets. After each roam the whole network must describe exactly one path
for every client.

Topology:

  - SC1 (primary) controls AP11 and AP12 in subnet A;
  - SC2 controls AP21 and AP22 in subnet B;
  - SC3 controls AP13 in subnet A and AP31 in subnet C.

Subnet A has two SCs, so SC1 (the lower address) is the home SC of every
client of A, and SC3 serves two subnets.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_core_support import Network, address, mac

SC1, SC2, SC3 = address("10.255.0.1"), address("10.255.0.2"), address("10.255.0.3")
APS = {
    "10.1.0.11": ("10.255.0.1", "10.1.0.0/24"),
    "10.1.0.12": ("10.255.0.1", "10.1.0.0/24"),
    "10.2.0.21": ("10.255.0.2", "10.2.0.0/24"),
    "10.2.0.22": ("10.255.0.2", "10.2.0.0/24"),
    "10.1.0.13": ("10.255.0.3", "10.1.0.0/24"),
    "10.3.0.31": ("10.255.0.3", "10.3.0.0/24"),
}
CLIENTS = {
    mac("02:00:00:00:00:01"): address("10.1.0.100"),
    mac("02:00:00:00:00:02"): address("10.1.0.101"),
    mac("02:00:00:00:00:03"): address("10.2.0.100"),
    mac("02:00:00:00:00:04"): address("10.3.0.100"),
}
# The home SC of each subnet: the lowest address among the SCs serving it.
HOME_SC = {"10.1.0": SC1, "10.2.0": SC2, "10.3.0": SC3}


def build(share_client_cache: bool = True) -> Network:
    net = Network(primary=str(SC1))
    for sc in (SC1, SC2, SC3):
        net.add_sc(str(sc), share_client_cache=share_client_cache)
    for ap, (sc, subnet) in APS.items():
        net.add_ap(ap, sc, subnet)
    return net


def controller_of(ap: IPv4Address) -> IPv4Address:
    return address(APS[str(ap)][0])


def at_home(ap: IPv4Address, ip: IPv4Address) -> bool:
    return str(ip).rsplit(".", 1)[0] == str(ap).rsplit(".", 1)[0]


def check_client(net: Network, client: bytes, ip: IPv4Address, ap: IPv4Address) -> None:
    """
    Assert that the network stores exactly one consistent path for a client
    associated with C{ap}.
    """
    aps = [address(name) for name in APS]
    scs = [SC1, SC2, SC3]
    home_sc = HOME_SC[str(ip).rsplit(".", 1)[0]]
    foreign_sc = controller_of(ap)

    stations = [other for other in aps if client in net.ap(str(other)).stations]
    assert stations == [ap]
    travelers = [sc for sc in scs if net.sc(str(sc)).db.get_traveler(client)]
    visitors = [sc for sc in scs if net.sc(str(sc)).db.get_visitor(client)]
    tunnelling_aps = [other for other in aps if client in net.ap(str(other)).travelers]
    visited_aps = [other for other in aps if client in net.ap(str(other)).visitors]

    if at_home(ap, ip):
        assert travelers == []
        assert visitors == []
        assert tunnelling_aps == []
        assert visited_aps == []
        for node in [*aps, *scs]:
            assert client not in net.bridge(str(node)).static, f"static entry on {node}"
            assert client not in net.bridge(str(node)).source, f"source entry on {node}"
        return

    assert travelers == [home_sc]
    assert visitors == [foreign_sc]
    assert visited_aps == [ap]
    traveler = net.sc(str(home_sc)).db.get_traveler(client)
    assert traveler.foreign_sc == foreign_sc
    assert tunnelling_aps == [traveler.home_ap]
    assert controller_of(traveler.home_ap) == home_sc
    assert at_home(traveler.home_ap, ip)
    assert net.sc(str(foreign_sc)).db.get_visitor(client).ap == ap

    # The bridge entries along the path, and nowhere else.
    home_ap = traveler.home_ap
    assert net.bridge(str(home_ap)).static[client] == home_sc
    assert net.bridge(str(home_sc)).source[client] == home_ap
    assert net.bridge(str(foreign_sc)).static[client] == ap
    if foreign_sc != home_sc:
        assert net.bridge(str(home_sc)).static[client] == foreign_sc
        assert net.bridge(str(foreign_sc)).source[client] == home_sc
    assert net.bridge(str(ap)).source.get(client, foreign_sc) == foreign_sc
    on_path = {home_ap, home_sc, foreign_sc, ap}
    for node in [*aps, *scs]:
        if node not in on_path:
            assert client not in net.bridge(str(node)).static, f"static entry on {node}"
            assert client not in net.bridge(str(node)).source, f"source entry on {node}"


def check_flooding(net: Network) -> None:
    """
    An AP floods into its SC tunnel exactly while it tunnels a traveler.
    """
    for name, (sc, _) in APS.items():
        tunnelling = bool(net.ap(name).travelers)
        assert (address(sc) in net.bridge(name).flood_to) == tunnelling, name


moves = st.lists(
    st.tuples(st.sampled_from(sorted(CLIENTS)), st.sampled_from(sorted(APS))),
    min_size=1,
    max_size=25,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves, st.booleans())
def test_random_walks_keep_one_path(walk: list[tuple[bytes, str]], share: bool) -> None:
    """
    Whatever order the clients roam in, after each roam every client has
    one station entry, at most one traveler and one visitor entry, and
    bridge entries only along its path. Without shared client details the
    old AP only learns of the move when the station's association there
    ends, which the walk reports after the new association.
    """
    net = build(share_client_cache=share)
    location: dict[bytes, IPv4Address] = {}
    for client, ap_name in walk:
        ap = address(ap_name)
        ip = CLIENTS[client]
        net.event(ap_name, "station_associated", client)
        net.event(ap_name, "client_ip_seen", client, ip, prefix=24)
        previous = location.get(client)
        if not share and previous is not None and previous != ap:
            net.event(str(previous), "station_disassociated", client)
        location[client] = ap

        for moved, where in location.items():
            check_client(net, moved, CLIENTS[moved], where)
        check_flooding(net)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves)
def test_random_walks_without_first_packet(walk: list[tuple[bytes, str]]) -> None:
    """
    The same holds when the AP decides from its cache alone: every client
    announced its address once at home first, and roams then complete
    before any IP packet.
    """
    net = build()
    location: dict[bytes, IPv4Address] = {}
    for client, ip in CLIENTS.items():
        home = next(name for name, (_, subnet) in APS.items() if at_home(address(name), ip))
        net.event(home, "station_associated", client)
        net.event(home, "client_ip_seen", client, ip, prefix=24)
        location[client] = address(home)

    for client, ap_name in walk:
        net.event(ap_name, "station_associated", client)
        location[client] = address(ap_name)

        for moved, where in location.items():
            check_client(net, moved, CLIENTS[moved], where)
        check_flooding(net)
