# -*- test-case-name: tests.bridge.test_l3 -*-
"""
The bridge's layer-3 knowledge: which IPv4 subnets are reached through which
port, consulted when the bridge learns a new station.

An entry is a subnet, an egress (port and aggregation ID) and a match kind:

 - a I{positive} entry matches an address inside its subnet: "a station of
   this subnet is a visitor here; send its traffic to this egress";
 - a I{negative} entry matches an address outside its subnet: "this subnet
   is local; a station of any other subnet is a visitor".

Entries are ordered and the first match wins.  Negative entries share one
notion of "local": an address inside the subnet of I{any} negative entry
never matches a negative entry.  With one negative entry this is the plain
rule above; with several (an access point with one subnet per VLAN in one
bridge) it keeps a station of one local subnet from being sent away by the
entry of another.

An access point contains one negative entry per local subnet, pointing at its
controller.  A service controller holds positive entries for the subnets of
its neighbours and, optionally, a trailing negative entry on its own subnet
that sends every other visitor to a default egress.  An empty database
matches nothing, and the bridge then learns like a plain learning bridge.
"""

__all__ = [
    "MAX_L3_ENTRIES",
    "Egress",
    "L3Database",
    "L3DatabaseError",
    "L3Entry",
    "ap_entries",
    "is_unicast_host_address",
    "sc_entries",
]

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from roaming.errors import RoamingError

MAX_L3_ENTRIES = 4096
"""Default bound on the number of entries in one database."""

Egress = tuple[int, int | None]
"""A bridge port number and an aggregation ID (C{None} for a plain port)."""

NetworkLike = ipaddress.IPv4Network | str


@dataclass(frozen=True, slots=True)
class L3Entry:
    """
    One subnet of the layer-3 knowledge database.
    """

    network: ipaddress.IPv4Network
    """The subnet, such as C{IPv4Network("10.1.0.0/16")}."""

    port: int
    """Bridge port of the egress."""

    agg_id: int | None = None
    """Aggregation ID of the egress on an aggregation port, else C{None}."""

    positive: bool = True
    """C{True}: addresses inside the subnet match; C{False}: addresses outside."""

    @property
    def egress(self) -> Egress:
        """The C{(port, agg_id)} pair that a matching station's traffic goes to."""
        return (self.port, self.agg_id)


class L3DatabaseError(RoamingError, ValueError):
    """
    A management request on the layer-3 knowledge database is invalid: a
    duplicate or missing subnet, a full database, or a bad egress.
    """


def _as_network(network: NetworkLike) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(network)
    except ValueError as e:
        raise L3DatabaseError(f"invalid IPv4 subnet {network!r}: {e}") from None


def is_unicast_host_address(ip: int) -> bool:
    """
    Return whether an IPv4 address can identify a station's home subnet.

    0.0.0.0/8 and 127.0.0.0/8 (RFC 1122 section 3.2.1.3), link-local
    169.254.0.0/16 (RFC 3927) and everything from 224.0.0.0 up (multicast,
    reserved and the limited broadcast) belong to no subnet, so a station
    using one is never matched against the database.
    """
    first = ip >> 24
    if first == 0 or first == 127 or first >= 224:
        return False
    return ip >> 16 != 0xA9FE


class L3Database:
    """
    Ordered IPv4 subnet entries with first-match lookup.

    @param check_egress: called with C{(port, agg_id)} before an entry is
        stored; raises a C{ValueError} for an egress that does not exist.
    @param on_change: called with no arguments after every change.
    @param max_entries: bound on the number of entries.
    """

    def __init__(
        self,
        check_egress: Callable[[int, int | None], None] | None = None,
        *,
        on_change: Callable[[], None] | None = None,
        max_entries: int = MAX_L3_ENTRIES,
    ) -> None:
        self._check_egress = check_egress
        self._on_change = on_change
        self._max_entries = max_entries
        self._entries: list[L3Entry] = []
        # Compiled form for lookup: (network, mask, positive, egress) ints.
        self._compiled: tuple[tuple[int, int, bool, Egress], ...] = ()
        self._local: tuple[tuple[int, int], ...] = ()
        self.generation = 0
        """Incremented on every change, so a user can tell that lookups may differ."""

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def entries(self) -> list[L3Entry]:
        """Return the entries in lookup order."""
        return list(self._entries)

    def add(
        self,
        network: NetworkLike,
        port: int,
        agg_id: int | None = None,
        *,
        positive: bool = True,
        position: int | None = None,
    ) -> L3Entry:
        """
        Insert an entry at C{position} (default: the end) and return it.

        @raise L3DatabaseError: the subnet already has an entry, the
            database is full, or the egress does not exist.
        """
        entry = self._make_entry(network, port, agg_id, positive)
        if self._index(entry.network) is not None:
            raise L3DatabaseError(
                f"subnet {entry.network} already has an entry; use modify() to change it"
            )
        if len(self._entries) >= self._max_entries:
            raise L3DatabaseError(
                f"layer-3 database is full ({self._max_entries} entries); remove an entry first"
            )
        if position is None:
            self._entries.append(entry)
        else:
            self._entries.insert(position, entry)
        self._compile()
        return entry

    def modify(
        self,
        network: NetworkLike,
        *,
        port: int | None = None,
        agg_id: int | None = None,
        positive: bool | None = None,
    ) -> L3Entry:
        """
        Change the egress or match kind of the entry for C{network}, keeping
        its position, and return the new entry.

        When C{port} is given, C{agg_id} replaces the aggregation ID too
        (C{None} for a plain port); without C{port}, C{agg_id} alone
        replaces it when not C{None}.

        @raise L3DatabaseError: no entry has that subnet, or the new egress
            does not exist.
        """
        key = _as_network(network)
        index = self._index(key)
        if index is None:
            raise L3DatabaseError(f"subnet {key} has no entry; use add() to create one")
        old = self._entries[index]
        new_port = old.port if port is None else port
        new_agg_id = old.agg_id if port is None and agg_id is None else agg_id
        new_positive = old.positive if positive is None else positive
        entry = self._make_entry(key, new_port, new_agg_id, new_positive)
        self._entries[index] = entry
        self._compile()
        return entry

    def remove(self, network: NetworkLike) -> L3Entry:
        """
        Remove and return the entry for C{network}.

        @raise L3DatabaseError: no entry has that subnet.
        """
        key = _as_network(network)
        index = self._index(key)
        if index is None:
            raise L3DatabaseError(f"subnet {key} has no entry")
        entry = self._entries.pop(index)
        self._compile()
        return entry

    def replace(self, entries: Iterable[L3Entry]) -> None:
        """
        Replace the whole database with C{entries}, in order, such as the
        result of L{ap_entries} or L{sc_entries}.

        @raise L3DatabaseError: two entries have the same subnet, there are
            too many, or an egress does not exist; the database is then
            unchanged.
        """
        new = [self._make_entry(e.network, e.port, e.agg_id, e.positive) for e in entries]
        if len({e.network for e in new}) != len(new):
            raise L3DatabaseError("two entries have the same subnet; give each subnet one entry")
        if len(new) > self._max_entries:
            raise L3DatabaseError(
                f"{len(new)} entries exceed the bound of {self._max_entries}; "
                "raise max_entries or merge subnets"
            )
        self._entries = new
        self._compile()

    def references(self, port: int) -> list[L3Entry]:
        """Return the entries whose egress is on C{port}."""
        return [e for e in self._entries if e.port == port]

    def lookup(self, ip: int) -> Egress | None:
        """
        Return the egress of the first entry that matches IPv4 address C{ip},
        or C{None} when none matches.
        """
        local = None
        for network, mask, positive, egress in self._compiled:
            if positive:
                if ip & mask == network:
                    return egress
                continue
            if local is None:
                local = any(ip & m == n for n, m in self._local)
            if not local:
                return egress
        return None

    def _make_entry(
        self, network: NetworkLike, port: int, agg_id: int | None, positive: bool
    ) -> L3Entry:
        if self._check_egress is not None:
            self._check_egress(port, agg_id)
        return L3Entry(_as_network(network), port, agg_id, bool(positive))

    def _index(self, network: ipaddress.IPv4Network) -> int | None:
        for index, entry in enumerate(self._entries):
            if entry.network == network:
                return index
        return None

    def _compile(self) -> None:
        self._compiled = tuple(
            (
                int(e.network.network_address),
                int(e.network.netmask),
                e.positive,
                e.egress,
            )
            for e in self._entries
        )
        self._local = tuple(
            (int(e.network.network_address), int(e.network.netmask))
            for e in self._entries
            if not e.positive
        )
        self.generation += 1
        if self._on_change is not None:
            self._on_change()


def ap_entries(
    local_subnets: Iterable[NetworkLike], controller_port: int, controller_agg_id: int | None = None
) -> list[L3Entry]:
    """
    Build the database of an access point: one negative entry per local
    subnet, each pointing at the port towards the controller, so a station
    from any other subnet is sent to the controller.
    """
    return [
        L3Entry(_as_network(subnet), controller_port, controller_agg_id, positive=False)
        for subnet in local_subnets
    ]


def sc_entries(
    neighbours: Iterable[tuple[NetworkLike, int, int | None]],
    *,
    local_subnet: NetworkLike | None = None,
    default_port: int | None = None,
    default_agg_id: int | None = None,
) -> list[L3Entry]:
    """
    Build the database of a service controller: one positive entry per
    C{(subnet, port, agg_id)} of a neighbour, in the order given, then, when
    C{local_subnet} and C{default_port} are given, a trailing negative entry
    on C{local_subnet} that sends every other visitor to the default egress.

    @raise L3DatabaseError: only one of C{local_subnet} and C{default_port}
        is given.
    """
    entries = [
        L3Entry(_as_network(subnet), port, agg_id, positive=True)
        for subnet, port, agg_id in neighbours
    ]
    if (local_subnet is None) != (default_port is None):
        raise L3DatabaseError("a trailing negative entry needs both local_subnet and default_port")
    if local_subnet is not None:
        entries.append(
            L3Entry(_as_network(local_subnet), default_port, default_agg_id, positive=False)
        )
    return entries
