# -*- test-case-name: tests.lab.test_topology -*-
"""
The lab's network: what to build (L{LabPlan}) and the builder that creates it
in network namespaces with pyroute2 (L{LabNetwork}).

Every lab address is in 198.18.0.0/15, the range RFC 2544 section C.2.2
reserves for benchmarking, so lab traffic can never be confused with a real
network's. Subnet A is 198.18.1.0/24 and subnet B is 198.18.2.0/24; the
router is C{.1} in each, the DHCP server C{.2}, the SC C{.11}, the APs C{.21}
and C{.22}, the host C{.10} (subnet A only) and the DHCP pool C{.100} to
C{.199}.

Two namespaces hold only kernel bridges: C{lan} has one bridge per subnet,
the subnet's switch, and C{air} has one bridge per AP, the AP's radio cell.
Each AP namespace has a veth C{air0} whose peer is a port of its cell bridge
and a veth C{lan0} whose peer is a port of its subnet's switch. A client's
veth C{wlan0} has its peer in the cell of the AP it is associated with, and
roaming moves that peer to another cell bridge: the client keeps its
interface, MAC address and IP address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "LAB_NETWORK",
    "Client",
    "LabError",
    "LabNetwork",
    "LabPlan",
    "Node",
    "Subnet",
    "check_privileges",
    "default_plan",
]

#: The RFC 2544 benchmarking range that contains every lab address.
LAB_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")

#: MTU of the clients' interfaces. Frames to and from a roamed client cross
#: GRE tunnels, which add outer IPv4, GRE and Ethernet headers, so the
#: clients leave room for them on the lab's 1500-byte links.
CLIENT_MTU = 1400

#: Bound on the clients in one lab, so a typo cannot create thousands of
#: namespaces.
MAX_CLIENTS = 200


class LabError(Exception):
    """
    The lab cannot be built or run. The message names what is missing or
    what failed, and what to do.
    """


@dataclass(frozen=True)
class Subnet:
    """
    One IP subnet of the lab: its switch, router address and DHCP pool.
    """

    name: str
    network: ipaddress.IPv4Network

    def host(self, number: int) -> ipaddress.IPv4Address:
        """
        Return the address with host number C{number} in this subnet.
        """
        return self.network.network_address + number

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """
        The router's address in this subnet.
        """
        return self.host(1)

    @property
    def dhcp_server(self) -> ipaddress.IPv4Address:
        """
        The DHCP server's address in this subnet.
        """
        return self.host(2)

    @property
    def pool(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """
        The first and last address that the DHCP server leases.
        """
        return self.host(100), self.host(199)

    @property
    def switch(self) -> str:
        """
        Name of the kernel bridge that is this subnet's switch.
        """
        return f"lan-{self.name}"


@dataclass(frozen=True)
class Node:
    """
    A namespace attached to one subnet: the router is attached to all.

    @ivar role: C{"router"}, C{"dhcp"}, C{"host"}, C{"sc"} or C{"ap"}.
    @ivar controller: for an AP, the name of its SC.
    """

    name: str
    role: str
    subnet: Subnet
    address: ipaddress.IPv4Address
    controller: str | None = None

    @property
    def cell(self) -> str:
        """
        Name of this AP's cell bridge in the air namespace.
        """
        return f"cell-{self.name}"


@dataclass(frozen=True)
class Client:
    """
    A wireless client: a namespace with a real Linux stack and one interface.
    """

    name: str
    mac: bytes
    home_ap: str
    index: int


@dataclass(frozen=True)
class LabPlan:
    """
    Everything the lab builds, with its namespace names.

    @ivar prefix: prefix of every namespace name, unique per run.
    """

    prefix: str
    subnets: tuple[Subnet, ...]
    nodes: tuple[Node, ...]
    clients: tuple[Client, ...] = field(default=())

    def namespace(self, name: str) -> str:
        """
        Return the namespace name of node, client or bridge holder C{name}.
        """
        return f"{self.prefix}-{name}"

    def node(self, name: str) -> Node:
        """
        Return the node called C{name}.

        @raise KeyError: if there is none.
        """
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def nodes_with_role(self, role: str) -> list[Node]:
        """
        Return the nodes with C{role}, in plan order.
        """
        return [node for node in self.nodes if node.role == role]

    def subnet(self, name: str) -> Subnet:
        """
        Return the subnet called C{name}.
        """
        for subnet in self.subnets:
            if subnet.name == name:
                return subnet
        raise KeyError(name)

    @property
    def namespaces(self) -> list[str]:
        """
        Every namespace of the plan, bridge holders first.
        """
        names = ["lan", "air"]
        names += [node.name for node in self.nodes]
        names += [client.name for client in self.clients]
        return [self.namespace(name) for name in names]


def default_plan(prefix: str, clients: int = 1) -> LabPlan:
    """
    Return the default topology: a router joining subnets A and B, in each
    a DHCP server, an SC and two APs, a host in A, and C{clients} clients
    whose home APs alternate between the two APs of subnet A.

    @raise LabError: if C{clients} is not between 1 and L{MAX_CLIENTS}.
    """
    if not 1 <= clients <= MAX_CLIENTS:
        raise LabError(f"invalid client count {clients}: expected 1 to {MAX_CLIENTS}")

    subnet_a = Subnet("a", ipaddress.IPv4Network("198.18.1.0/24"))
    subnet_b = Subnet("b", ipaddress.IPv4Network("198.18.2.0/24"))
    nodes = [Node("router", "router", subnet_a, subnet_a.gateway)]
    for subnet, controller in ((subnet_a, "sc1"), (subnet_b, "sc2")):
        nodes.append(Node(f"dhcp-{subnet.name}", "dhcp", subnet, subnet.dhcp_server))
        nodes.append(Node(controller, "sc", subnet, subnet.host(11)))
        for number in (1, 2):
            nodes.append(
                Node(
                    f"ap-{subnet.name}{number}",
                    "ap",
                    subnet,
                    subnet.host(20 + number),
                    controller=controller,
                )
            )
    nodes.append(Node("host-a", "host", subnet_a, subnet_a.host(10)))

    homes = ("ap-a1", "ap-a2")
    client_list = tuple(
        Client(
            name=f"client-{index}",
            # Locally administered unicast addresses (IEEE 802 bit 0x02).
            mac=bytes([0x02, 0x00, 0x00, 0x00, index >> 8, index & 0xFF]),
            home_ap=homes[(index - 1) % len(homes)],
            index=index,
        )
        for index in range(1, clients + 1)
    )
    return LabPlan(prefix, (subnet_a, subnet_b), tuple(nodes), client_list)


def check_privileges() -> None:
    """
    Check that this process can build the lab.

    @raise LabError: naming what is missing: root, /dev/net/tun, or the
        C{ip} command.
    """
    missing = []
    if os.geteuid() != 0:
        missing.append("root privileges (run it with sudo, or as root)")
    if not os.path.exists("/dev/net/tun"):
        missing.append("the TUN/TAP device /dev/net/tun (load the tun module: modprobe tun)")
    if not _which("ip"):
        missing.append("the ip command from iproute2 (apt-get install iproute2)")
    if not _which("ethtool"):
        missing.append("the ethtool command (apt-get install ethtool)")
    if missing:
        raise LabError("roaming-lab needs " + "; ".join(missing))


def _which(program: str) -> bool:
    for directory in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(os.pathsep):
        if os.access(os.path.join(directory, program), os.X_OK):
            return True
    return os.access(f"/usr/sbin/{program}", os.X_OK)


class LabNetwork:
    """
    Build and remove the namespaces, links and bridges of a L{LabPlan}.

    With C{flat=True} every AP is a plain kernel bridge between C{air0} and
    C{lan0}; this checks the topology, DHCP and probes without the roaming
    daemons and never carries a roam measurement. Otherwise the AP and SC
    namespaces get unaddressed links for the daemons to attach to.
    """

    def __init__(self, plan: LabPlan, *, flat: bool = False) -> None:
        self.plan = plan
        self.flat = flat
        self.created: list[str] = []
        self._air = None

    def build(self) -> None:
        """
        Create everything; on failure remove what was created and re-raise.
        """
        from pyroute2 import netns

        try:
            for name in self.plan.namespaces:
                netns.create(name)
                self.created.append(name)
            self._build_bridges()
            for node in self.plan.nodes:
                self._build_node(node)
            for client in self.plan.clients:
                self._build_client(client)
            self._disable_checksum_offload()
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> list[str]:
        """
        Remove every namespace this builder created, which also deletes the
        links and bridges in them; return the names that could not be removed.
        """
        from pyroute2 import netns

        if self._air is not None:
            air, self._air = self._air, None
            with contextlib.suppress(Exception):
                air.close()
        failed = []
        for name in reversed(self.created):
            try:
                netns.remove(name)
            except OSError:
                failed.append(name)
        self.created = [name for name in self.created if name in failed]
        return failed

    @contextmanager
    def _ns(self, name: str) -> Iterator[object]:
        from pyroute2 import NetNS

        with NetNS(self.plan.namespace(name)) as ns:
            yield ns

    def _build_bridges(self) -> None:
        with self._ns("lan") as lan:
            for subnet in self.plan.subnets:
                _add_bridge(lan, subnet.switch)
            _link_up(lan, "lo")
        with self._ns("air") as air:
            for node in self.plan.nodes_with_role("ap"):
                _add_bridge(air, node.cell)
            _link_up(air, "lo")

    def _build_node(self, node: Node) -> None:
        subnets = self.plan.subnets if node.role == "router" else (node.subnet,)
        with self._ns(node.name) as ns:
            _link_up(ns, "lo")
            for subnet in subnets:
                inside = f"eth-{subnet.name}" if node.role == "router" else "lan0"
                outside = f"{node.name}-{subnet.name}"[:15]
                self._veth(ns, inside, "lan", outside, subnet.switch)
                if node.role == "router":
                    _add_address(ns, inside, subnet.gateway, subnet.network.prefixlen)
                elif node.role in ("dhcp", "host"):
                    _add_address(ns, inside, node.address, subnet.network.prefixlen)
                    ns.route("add", dst="0.0.0.0/0", gateway=str(subnet.gateway))
            if node.role == "ap":
                self._veth(ns, "air0", "air", f"{node.name}-air"[:15], node.cell)
                if self.flat:
                    _add_bridge(ns, "br0")
                    for port in ("air0", "lan0"):
                        ns.link("set", index=_index(ns, port), master=_index(ns, "br0"))
        if node.role == "router":
            run_in(self.plan.namespace(node.name), ["sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def _disable_checksum_offload(self) -> None:
        """
        Make every lab interface send complete checksums.

        A veth normally leaves the checksum of locally sent packets to be
        filled in later (checksum offload). The kernel bridges keep that
        state, but a frame that crosses a daemon's packet socket would reach
        the other side with a wrong checksum, which a real wire never
        carries, so the lab turns transmit checksum offload off.
        """
        interfaces = []
        for node in self.plan.nodes:
            if node.role == "router":
                names = [f"eth-{subnet.name}" for subnet in self.plan.subnets]
            else:
                names = ["lan0", "air0"] if node.role == "ap" else ["lan0"]
            interfaces += [(node.name, name) for name in names]
        interfaces += [(client.name, "wlan0") for client in self.plan.clients]
        for holder, name in interfaces:
            run_in(self.plan.namespace(holder), ["ethtool", "-K", name, "tx", "off"])

    def _build_client(self, client: Client) -> None:
        home = self.plan.node(client.home_ap)
        with self._ns(client.name) as ns:
            _link_up(ns, "lo")
            self._veth(ns, "wlan0", "air", self.client_port(client), home.cell)
            ns.link(
                "set",
                index=_index(ns, "wlan0"),
                address=":".join(f"{octet:02x}" for octet in client.mac),
                mtu=CLIENT_MTU,
            )

    def client_port(self, client: Client) -> str:
        """
        Return the name of the client's veth peer in the air namespace.
        """
        return f"sta-{client.index}"

    def move_client(self, client: Client, ap: Node) -> None:
        """
        Move the client's link into C{ap}'s cell: the emulated roam.

        The netlink socket into the air namespace stays open between moves,
        so a move costs one netlink request.
        """
        if self._air is None:
            from pyroute2 import NetNS

            self._air = NetNS(self.plan.namespace("air"))
        air = self._air
        air.link("set", index=_index(air, self.client_port(client)), master=_index(air, ap.cell))

    def _veth(self, ns: object, inside: str, peer_ns: str, outside: str, bridge: str) -> None:
        """
        Create a veth pair with C{inside} in C{ns} and C{outside} in
        C{peer_ns}, attached to C{bridge} there, both ends up.
        """
        ns.link(
            "add",
            ifname=inside,
            kind="veth",
            peer={"ifname": outside, "net_ns_fd": self.plan.namespace(peer_ns)},
        )
        _link_up(ns, inside)
        with self._ns(peer_ns) as peer:
            peer.link("set", index=_index(peer, outside), master=_index(peer, bridge), state="up")


def _index(ns: object, name: str) -> int:
    found = ns.link_lookup(ifname=name)
    if not found:
        raise LabError(f"interface {name} not found in a lab namespace")
    return found[0]


def _link_up(ns: object, name: str) -> None:
    ns.link("set", index=_index(ns, name), state="up")


def _add_bridge(ns: object, name: str) -> None:
    # Forwarding delay 0: the lab's switches and cells have no loops, and
    # the default 15 s of learning would hold every frame after a move.
    ns.link("add", ifname=name, kind="bridge", br_forward_delay=0, br_stp_state=0)
    _link_up(ns, name)


def _add_address(ns: object, name: str, address: ipaddress.IPv4Address, prefix: int) -> None:
    ns.addr("add", index=_index(ns, name), address=str(address), prefixlen=prefix)


def run_in(namespace: str, command: list[str], *, timeout: float = 10.0) -> str:
    """
    Run C{command} in C{namespace} and return its standard output.

    @raise LabError: if it fails or runs longer than C{timeout} seconds.
    """
    argv = ["ip", "netns", "exec", namespace, *command]
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)} timed out after {timeout} s") from None
    if completed.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed with exit status {completed.returncode}: "
            f"{completed.stderr.strip()}"
        )
    return completed.stdout
