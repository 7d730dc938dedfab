# -*- test-case-name: tests.bridge.test_path -*-
"""
Four bridges wired together: a visitor's frames cross three tunnels to its
home subnet on their first pass, and the replies find their way back, with
every bridge making its own decisions.

    visitor -- foreign AP == SC-A == SC-B == home AP -- home router
               (10.1/16)                    (10.2/16)

"==" is a GRE tunnel, an aggregation member at each end.  The tunnels are
modelled as direct links: a frame sent to a member arrives at the other
end's member unchanged.
"""

from collections import deque

from roaming.bridge import Bridge, ap_entries, sc_entries

from .frames import BROADCAST, arp_request, ipv4_udp

VISITOR = "02:00:00:00:02:07"
HOME_ROUTER = "02:00:00:00:02:01"
LOCAL_HOST = "02:00:00:00:01:09"

Place = tuple[str, int, int | None]


class Network:
    """
    Bridges joined by point-to-point links; everything else is an edge
    where frames leave the model.
    """

    def __init__(self) -> None:
        self.bridges: dict[str, Bridge] = {}
        self.ports: dict[tuple[str, str], int] = {}
        self.links: dict[Place, Place] = {}

    def bridge(self, name: str, l3, *ports: tuple[str, dict]) -> None:
        bridge = Bridge(name)
        for port_name, options in ports:
            members = options.pop("members", ())
            number = bridge.add_port(port_name, **options)
            for member in members:
                bridge.add_member(number, member)
            self.ports[(name, port_name)] = number
        bridge.l3.replace(l3(self.ports, name))
        self.bridges[name] = bridge

    def link(self, a: tuple[str, str, int], b: tuple[str, str, int]) -> None:
        first = (a[0], self.ports[(a[0], a[1])], a[2])
        second = (b[0], self.ports[(b[0], b[1])], b[2])
        self.links[first] = second
        self.links[second] = first

    def send(self, bridge: str, port: str, frame: bytes, now: float = 0.0) -> set[tuple[str, str]]:
        """
        Inject a frame and return the edges, as C{(bridge, port name)}, where
        copies leave the model.
        """
        names = {(b, number): p for (b, p), number in self.ports.items()}
        edges: set[tuple[str, str]] = set()
        queue = deque([(bridge, self.ports[(bridge, port)], None)])
        hops = 0
        while queue:
            hops += 1
            assert hops < 50, "frame loops between bridges"
            name, number, agg_id = queue.popleft()
            for egress_port, egress_agg in self.bridges[name].process(number, agg_id, frame, now):
                peer = self.links.get((name, egress_port, egress_agg))
                if peer is None:
                    edges.add((name, names[(name, egress_port)]))
                else:
                    queue.append(peer)
        return edges


def build() -> Network:
    network = Network()
    network.bridge(
        "foreign-ap",
        lambda ports, me: ap_entries(["10.1.0.0/16"], ports[(me, "gre")], 1),
        ("wlan", {}),
        ("eth", {"l3_learning": False}),
        ("gre", {"aggregation": True, "members": [1]}),
    )
    network.bridge(
        "sc-a",
        lambda ports, me: sc_entries([("10.2.0.0/16", ports[(me, "sc")], 21)]),
        ("ap", {"aggregation": True, "members": [11]}),
        ("sc", {"aggregation": True, "members": [21], "split_horizon": True}),
        ("eth", {"l3_learning": False}),
    )
    network.bridge(
        "sc-b",
        lambda ports, me: sc_entries(
            [("10.2.0.0/16", ports[(me, "ap")], 12), ("10.1.0.0/16", ports[(me, "sc")], 31)]
        ),
        ("ap", {"aggregation": True, "members": [12]}),
        ("sc", {"aggregation": True, "members": [31], "split_horizon": True}),
        ("eth", {"l3_learning": False}),
    )
    network.bridge(
        "home-ap",
        lambda ports, me: ap_entries(["10.2.0.0/16"], ports[(me, "gre")], 1),
        ("wlan", {}),
        ("eth", {"l3_learning": False}),
        ("gre", {"aggregation": True, "members": [1]}),
    )
    network.link(("foreign-ap", "gre", 1), ("sc-a", "ap", 11))
    network.link(("sc-a", "sc", 21), ("sc-b", "sc", 31))
    network.link(("sc-b", "ap", 12), ("home-ap", "gre", 1))
    return network


def test_arp_reaches_home_subnet() -> None:
    """The visitor's first frame, an ARP request, appears only in its home subnet."""
    network = build()
    edges = network.send("foreign-ap", "wlan", arp_request(VISITOR, "10.2.0.7", "10.2.0.1"))
    assert edges == {("home-ap", "wlan"), ("home-ap", "eth")}


def test_reply_returns_to_visitor() -> None:
    """The home router's reply crosses the three tunnels back to the visitor's radio port."""
    network = build()
    network.send("foreign-ap", "wlan", arp_request(VISITOR, "10.2.0.7", "10.2.0.1"))
    reply = arp_request(HOME_ROUTER, "10.2.0.1", "10.2.0.7", dst_mac=VISITOR)
    assert network.send("home-ap", "eth", reply) == {("foreign-ap", "wlan")}
    traffic = ipv4_udp(VISITOR, HOME_ROUTER, "10.2.0.7", "8.8.8.8")
    assert network.send("foreign-ap", "wlan", traffic) == {("home-ap", "eth")}
    answer = ipv4_udp(HOME_ROUTER, VISITOR, "8.8.8.8", "10.2.0.7")
    assert network.send("home-ap", "eth", answer) == {("foreign-ap", "wlan")}


def test_visitor_broadcast_not_flooded_abroad() -> None:
    """A visitor's broadcast is flooded in its home subnet and nowhere on the way."""
    network = build()
    frame = ipv4_udp(VISITOR, BROADCAST, "10.2.0.7", "255.255.255.255")
    assert network.send("foreign-ap", "wlan", frame) == {("home-ap", "wlan"), ("home-ap", "eth")}


def test_local_host_stays_local() -> None:
    """A station of the foreign subnet is bridged there; nothing tunnels it."""
    network = build()
    frame = ipv4_udp(LOCAL_HOST, BROADCAST, "10.1.0.9", "10.1.255.255")
    edges = network.send("foreign-ap", "wlan", frame)
    # The core also floods it into the tunnels, as any bridge would, so it
    # reaches the other subnet.  Limiting floods into tunnels is a policy of
    # the daemons' ports, outside the core.
    assert ("foreign-ap", "eth") in edges
    assert ("home-ap", "wlan") in edges
    entry = network.bridges["foreign-ap"].lookup(LOCAL_HOST)
    assert entry is not None
    assert entry.src_egress is None
