# -*- test-case-name: tests.control.test_clientdb -*-
"""
The client database: what an SC or AP has stored about each wireless client, its
traveler and visitor lists, and the subnet tables that decide a client's
home.

L{ClientDatabase} stores three tables:

  - C{client}: one row per client MAC address with its IP address and prefix
    length (when known), VAP ID, VLAN ID, PMK cache data, and the four
    location fields. While the client is at home, C{current_ap},
    C{last_visited_ap} and C{home_ap} are the same AP and C{home_sc} is the
    SC controlling it. When the client roams to a foreign subnet,
    C{home_ap} keeps its value and C{current_ap} and C{last_visited_ap}
    follow the client.
  - C{traveler}: on a home SC, the clients that roamed away: the foreign SC
    serving each and the home AP (or the LAN) that tunnels its traffic.
  - C{visitor}: on a foreign SC or AP, the visiting clients: the AP serving
    each and the client's home SC.

Every change is written to SQLite at once. By default each change is its
own transaction. With C{batched=True} the changes collect in one open
transaction until L{ClientDatabase.flush} commits them (at the latest after
C{max_batch} changes), so a caller that acknowledges a change only after
C{flush} returns keeps the same guarantee: a restarted SC reopens the file
and loses no acknowledged client. Reads come from dictionaries loaded at
open. An AP's cache can skip SQLite altogether (C{path=None}).
The schema version is SQLite's C{user_version}. Each table has a maximum
size. A full C{client} table evicts the least recently updated client that
is neither a traveler nor a visitor, and full traveler or visitor tables
raise L{DatabaseFullError}.

L{SubnetTable} maps subnets to the nodes serving them, and picks the home
node for an address: the one with the lowest address among the nodes
serving the narrowest matching subnet.

This module is sans-IO apart from the SQLite file: it never reads the clock
(callers pass C{now}) and never logs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

import attrs

from roaming.control.messages import ControlError

__all__ = [
    "SCHEMA_VERSION",
    "ClientDatabase",
    "ClientRecord",
    "DatabaseFullError",
    "DatabaseVersionError",
    "SubnetTable",
    "Traveler",
    "Visitor",
]

#: Version of the SQLite schema written by this module.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE client (
    mac BLOB PRIMARY KEY,
    ip INTEGER,
    prefix INTEGER,
    vap_id INTEGER NOT NULL,
    vlan_id INTEGER NOT NULL,
    current_ap INTEGER,
    last_visited_ap INTEGER,
    home_ap INTEGER,
    home_sc INTEGER,
    pmk_cache BLOB NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX client_updated ON client (updated);
CREATE TABLE traveler (
    mac BLOB PRIMARY KEY,
    foreign_sc INTEGER NOT NULL,
    home_ap INTEGER,
    since REAL NOT NULL,
    vlan_id INTEGER NOT NULL
);
CREATE TABLE visitor (
    mac BLOB PRIMARY KEY,
    ap INTEGER,
    home_sc INTEGER NOT NULL,
    since REAL NOT NULL,
    vlan_id INTEGER NOT NULL
);
"""


class DatabaseFullError(ControlError):
    """
    A traveler or visitor table is at its maximum size.
    """


class DatabaseVersionError(ControlError):
    """
    The database file has a schema version this code cannot read.
    """


def _to_int(address: IPv4Address | None) -> int | None:
    return None if address is None else int(address)


def _to_address(value: int | None) -> IPv4Address | None:
    return None if value is None else IPv4Address(value)


@attrs.frozen
class ClientRecord:
    """
    A wireless client as one node has recorded it.
    """

    mac: bytes
    ip: IPv4Address | None = None
    #: Prefix length of the client's subnet, when known.
    prefix: int | None = None
    vap_id: int = 0
    vlan_id: int = 0
    #: The AP the client is associated with, or C{None} when it is
    #: associated with an AP of another SC (or with none).
    current_ap: IPv4Address | None = None
    last_visited_ap: IPv4Address | None = None
    home_ap: IPv4Address | None = None
    home_sc: IPv4Address | None = None
    pmk_cache: bytes = attrs.field(default=b"", repr=False)
    #: Time of the last change, in the caller's clock.
    updated: float = 0.0

    def _row(self) -> tuple:
        return (
            self.mac,
            _to_int(self.ip),
            self.prefix,
            self.vap_id,
            self.vlan_id,
            _to_int(self.current_ap),
            _to_int(self.last_visited_ap),
            _to_int(self.home_ap),
            _to_int(self.home_sc),
            self.pmk_cache,
            self.updated,
        )

    @classmethod
    def _from_row(cls, row: tuple) -> ClientRecord:
        mac, ip, prefix, vap_id, vlan_id, current, last, home_ap, home_sc, pmk, updated = row
        return cls(
            mac=bytes(mac),
            ip=_to_address(ip),
            prefix=prefix,
            vap_id=vap_id,
            vlan_id=vlan_id,
            current_ap=_to_address(current),
            last_visited_ap=_to_address(last),
            home_ap=_to_address(home_ap),
            home_sc=_to_address(home_sc),
            pmk_cache=bytes(pmk),
            updated=updated,
        )


@attrs.frozen
class Traveler:
    """
    A client that roamed away from a subnet this SC serves as home SC.
    """

    mac: bytes
    #: The foreign SC now serving the client (possibly this SC itself).
    foreign_sc: IPv4Address
    #: The home AP tunnelling the client's traffic, or C{None} when this SC
    #: puts it on the home subnet through its own LAN port.
    home_ap: IPv4Address | None
    since: float = 0.0
    #: The VLAN ID of the bridge entries made for this traveler.
    vlan_id: int = 0


@attrs.frozen
class Visitor:
    """
    A client from another subnet that an AP of this node is serving.
    """

    mac: bytes
    #: The AP serving the visitor (on an AP: the AP itself).
    ap: IPv4Address | None
    #: The client's home SC.
    home_sc: IPv4Address
    since: float = 0.0
    #: The VLAN ID of the bridge entries made for this visitor.
    vlan_id: int = 0


class ClientDatabase:
    """
    Clients, travelers and visitors, persisted in SQLite.

    @param path: a file path; C{":memory:"} for an SQLite database that
        lives as long as this object; or C{None} for no SQLite at all (an
        AP's cache, which needs no persistence).
    @param max_clients: maximum number of client rows, and separately of
        traveler rows and of visitor rows.
    @param batched: whether changes wait in an open transaction for
        L{flush} instead of each committing at once.
    @param max_batch: changes after which a batched database commits
        without waiting for L{flush}, bounding the work a crash can lose.
    """

    def __init__(
        self,
        path: str | None = ":memory:",
        *,
        max_clients: int = 100_000,
        batched: bool = False,
        max_batch: int = 10_000,
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients is {max_clients}; give at least 1")
        if max_batch < 1:
            raise ValueError(f"max_batch is {max_batch}; give at least 1")
        self.path = path
        self.max_clients = max_clients
        self.batched = batched
        self.max_batch = max_batch
        #: Changes written since the last commit (always 0 when not batched).
        self.uncommitted = 0
        # Clients in order of their last update, oldest first, so the
        # eviction candidate is found from the front.
        self._clients: dict[bytes, ClientRecord] = {}
        self._travelers: dict[bytes, Traveler] = {}
        # Traveler MAC addresses by home AP, for an AP that registers again.
        self._travelers_by_home_ap: dict[IPv4Address | None, set[bytes]] = {}
        self._visitors: dict[bytes, Visitor] = {}
        self._connection: sqlite3.Connection | None = None
        if path is not None:
            self._connection = sqlite3.connect(path, isolation_level=None)
            self._open_schema(self._connection)
            self._load(self._connection)

    def _open_schema(self, connection: sqlite3.Connection) -> None:
        if self.path != ":memory:":
            # WAL with synchronous=NORMAL syncs only at checkpoints. Commits
            # survive a crash of this process, and after a power cut or an
            # OS crash the file stays consistent but may lose the last
            # commits (SQLite documentation, "PRAGMA synchronous").
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version == 0:
            # executescript commits any open transaction first, so the
            # script carries its own BEGIN and COMMIT.
            connection.executescript(
                f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        elif version != SCHEMA_VERSION:
            connection.close()
            raise DatabaseVersionError(
                f"client database {self.path} has schema version {version}, but this"
                f" version of roaming reads only version {SCHEMA_VERSION}; move the file"
                " away to start with an empty database"
            )

    def _load(self, connection: sqlite3.Connection) -> None:
        for row in connection.execute("SELECT * FROM client ORDER BY updated"):
            record = ClientRecord._from_row(row)
            self._clients[record.mac] = record
        for mac, foreign_sc, home_ap, since, vlan_id in connection.execute(
            "SELECT * FROM traveler"
        ):
            self._index_traveler(
                Traveler(bytes(mac), IPv4Address(foreign_sc), _to_address(home_ap), since, vlan_id)
            )
        for mac, ap, home_sc, since, vlan_id in connection.execute("SELECT * FROM visitor"):
            self._visitors[bytes(mac)] = Visitor(
                bytes(mac), _to_address(ap), IPv4Address(home_sc), since, vlan_id
            )

    def _write(self, *statements: tuple[str, tuple]) -> None:
        """
        Run C{statements} as one atomic change, or do nothing without
        SQLite. Callers change the dictionaries only after this returns, so
        a failed write leaves memory and file alike unchanged.
        """
        connection = self._connection
        if connection is None:
            return
        if not self.batched:
            # With isolation_level=None the connection is in autocommit
            # mode, so "with connection" alone would not open a transaction:
            # begin one explicitly and let the context manager commit or
            # roll back.
            connection.execute("BEGIN")
            with connection:
                for sql, parameters in statements:
                    connection.execute(sql, parameters)
            return
        if not connection.in_transaction:
            connection.execute("BEGIN")
        # A savepoint per change keeps each change atomic inside the batch.
        connection.execute("SAVEPOINT change")
        try:
            for sql, parameters in statements:
                connection.execute(sql, parameters)
        except BaseException:
            connection.execute("ROLLBACK TO change")
            connection.execute("RELEASE change")
            raise
        connection.execute("RELEASE change")
        self.uncommitted += 1
        if self.uncommitted >= self.max_batch:
            self.flush()

    def flush(self) -> None:
        """
        Commit the changes waiting in a batched database; without waiting
        changes, do nothing.

        @raise sqlite3.Error: if the commit fails. The changes stay in
            memory but not in the file.
        """
        connection = self._connection
        self.uncommitted = 0
        if connection is not None and connection.in_transaction:
            connection.commit()

    def close(self) -> None:
        """
        Commit the waiting changes and close the SQLite connection.
        """
        if self._connection is not None:
            try:
                self.flush()
            finally:
                self._connection.close()

    # Clients.

    def get(self, mac: bytes) -> ClientRecord | None:
        """
        Return the client with this MAC address, or C{None}.
        """
        return self._clients.get(mac)

    def put(self, record: ClientRecord) -> None:
        """
        Insert or replace a client, evicting the least recently updated
        client that is neither a traveler nor a visitor if the table is full.

        @raise DatabaseFullError: if every stored client is a traveler or a
            visitor.
        """
        statements = []
        victim = None
        if record.mac not in self._clients and len(self._clients) >= self.max_clients:
            victim = self._eviction_candidate()
            statements.append(("DELETE FROM client WHERE mac = ?", (victim,)))
        statements.append(
            ("INSERT OR REPLACE INTO client VALUES (?,?,?,?,?,?,?,?,?,?,?)", record._row())
        )
        self._write(*statements)

        if victim is not None:
            del self._clients[victim]
        self._clients.pop(record.mac, None)
        self._clients[record.mac] = record

    def _eviction_candidate(self) -> bytes:
        for mac in self._clients:
            if mac not in self._travelers and mac not in self._visitors:
                return mac
        raise DatabaseFullError(
            f"client database {self.path} is full with {self.max_clients} clients, all"
            " travelers or visitors; raise max_clients"
        )

    def delete(self, mac: bytes) -> None:
        """
        Remove a client if it is stored.
        """
        if mac in self._clients:
            self._write(("DELETE FROM client WHERE mac = ?", (mac,)))
            del self._clients[mac]

    def clients(self) -> Iterator[ClientRecord]:
        """
        Iterate over every stored client.
        """
        return iter(list(self._clients.values()))

    def __len__(self) -> int:
        return len(self._clients)

    # Travelers.

    def get_traveler(self, mac: bytes) -> Traveler | None:
        """
        Return the traveler with this MAC address, or C{None}.
        """
        return self._travelers.get(mac)

    def put_traveler(self, traveler: Traveler) -> None:
        """
        Insert or replace a traveler.

        @raise DatabaseFullError: if the traveler table is full.
        """
        self._check_room(self._travelers, traveler.mac, "traveler")
        row = (
            traveler.mac,
            int(traveler.foreign_sc),
            _to_int(traveler.home_ap),
            traveler.since,
            traveler.vlan_id,
        )
        self._write(("INSERT OR REPLACE INTO traveler VALUES (?,?,?,?,?)", row))
        self._unindex_traveler(traveler.mac)
        self._index_traveler(traveler)

    def _index_traveler(self, traveler: Traveler) -> None:
        self._travelers[traveler.mac] = traveler
        self._travelers_by_home_ap.setdefault(traveler.home_ap, set()).add(traveler.mac)

    def _unindex_traveler(self, mac: bytes) -> None:
        traveler = self._travelers.pop(mac, None)
        if traveler is None:
            return
        macs = self._travelers_by_home_ap[traveler.home_ap]
        macs.discard(mac)
        if not macs:
            del self._travelers_by_home_ap[traveler.home_ap]

    def delete_traveler(self, mac: bytes) -> Traveler | None:
        """
        Remove a traveler and return it, or return C{None} if there was none.
        """
        traveler = self._travelers.get(mac)
        if traveler is not None:
            self._write(("DELETE FROM traveler WHERE mac = ?", (mac,)))
            self._unindex_traveler(mac)
        return traveler

    def travelers(self) -> list[Traveler]:
        """
        Return every traveler.
        """
        return list(self._travelers.values())

    def travelers_with_home_ap(self, home_ap: IPv4Address | None) -> list[Traveler]:
        """
        Return the travelers whose home AP is C{home_ap}, in MAC order.
        """
        macs = sorted(self._travelers_by_home_ap.get(home_ap, ()))
        return [self._travelers[mac] for mac in macs]

    # Visitors.

    def get_visitor(self, mac: bytes) -> Visitor | None:
        """
        Return the visitor with this MAC address, or C{None}.
        """
        return self._visitors.get(mac)

    def put_visitor(self, visitor: Visitor) -> None:
        """
        Insert or replace a visitor.

        @raise DatabaseFullError: if the visitor table is full.
        """
        self._check_room(self._visitors, visitor.mac, "visitor")
        row = (
            visitor.mac,
            _to_int(visitor.ap),
            int(visitor.home_sc),
            visitor.since,
            visitor.vlan_id,
        )
        self._write(("INSERT OR REPLACE INTO visitor VALUES (?,?,?,?,?)", row))
        self._visitors[visitor.mac] = visitor

    def delete_visitor(self, mac: bytes) -> Visitor | None:
        """
        Remove a visitor and return it, or return C{None} if there was none.
        """
        visitor = self._visitors.get(mac)
        if visitor is not None:
            self._write(("DELETE FROM visitor WHERE mac = ?", (mac,)))
            del self._visitors[mac]
        return visitor

    def visitors(self) -> list[Visitor]:
        """
        Return every visitor.
        """
        return list(self._visitors.values())

    def _check_room(self, table: dict, mac: bytes, name: str) -> None:
        if mac not in table and len(table) >= self.max_clients:
            raise DatabaseFullError(
                f"client database {self.path} is full with {self.max_clients} {name}s;"
                " raise max_clients"
            )


class SubnetTable:
    """
    Subnets and the nodes (SCs or APs, by address) serving them.

    @param max_entries: maximum number of (node, subnet) pairs.
    """

    def __init__(self, *, max_entries: int = 65_536) -> None:
        self.max_entries = max_entries
        self._by_node: dict[IPv4Address, tuple[IPv4Network, ...]] = {}
        self._by_subnet: dict[IPv4Network, set[IPv4Address]] = {}
        # (network address as int, prefix length) -> subnet, and the prefix
        # lengths in use from longest to shortest: a lookup costs one dict
        # probe per prefix length instead of a scan of every subnet.
        self._by_key: dict[tuple[int, int], IPv4Network] = {}
        self._prefix_lengths: list[int] = []

    def set(self, node: IPv4Address, subnets: Iterable[IPv4Network]) -> None:
        """
        Record that C{node} serves exactly C{subnets}, replacing what it
        served before.

        @raise DatabaseFullError: if the table would exceed C{max_entries}.
        """
        subnets = tuple(subnets)
        size = sum(len(served) for served in self._by_node.values())
        size -= len(self._by_node.get(node, ()))
        if size + len(subnets) > self.max_entries:
            raise DatabaseFullError(
                f"subnet table is full ({self.max_entries} entries): node {node}"
                f" registers {len(subnets)} subnets"
            )
        self.remove(node)
        self._by_node[node] = subnets
        for subnet in subnets:
            self._by_subnet.setdefault(subnet, set()).add(node)
            self._by_key[int(subnet.network_address), subnet.prefixlen] = subnet
        self._index_prefix_lengths()

    def remove(self, node: IPv4Address) -> tuple[IPv4Network, ...]:
        """
        Forget C{node} and return the subnets it served.
        """
        subnets = self._by_node.pop(node, ())
        for subnet in subnets:
            owners = self._by_subnet[subnet]
            owners.discard(node)
            if not owners:
                del self._by_subnet[subnet]
                del self._by_key[int(subnet.network_address), subnet.prefixlen]
        self._index_prefix_lengths()
        return subnets

    def _index_prefix_lengths(self) -> None:
        lengths = {prefixlen for _, prefixlen in self._by_key}
        self._prefix_lengths = sorted(lengths, reverse=True)

    def subnets_of(self, node: IPv4Address) -> tuple[IPv4Network, ...]:
        """
        Return the subnets C{node} serves (empty if it is unknown).
        """
        return self._by_node.get(node, ())

    def nodes(self) -> list[IPv4Address]:
        """
        Return every node, in address order.
        """
        return sorted(self._by_node)

    def subnets(self) -> list[IPv4Network]:
        """
        Return every subnet served by at least one node.
        """
        return sorted(self._by_subnet)

    def owners(self, subnet: IPv4Network) -> list[IPv4Address]:
        """
        Return the nodes serving exactly C{subnet}, in address order.
        """
        return sorted(self._by_subnet.get(subnet, ()))

    def subnet_for(self, ip: IPv4Address) -> IPv4Network | None:
        """
        Return the narrowest served subnet containing C{ip}, or C{None}.
        """
        address = int(ip)
        for prefixlen in self._prefix_lengths:
            mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
            subnet = self._by_key.get((address & mask, prefixlen))
            if subnet is not None:
                return subnet
        return None

    def nodes_for(self, ip: IPv4Address) -> list[IPv4Address]:
        """
        Return the nodes serving the narrowest subnet containing C{ip}, in
        address order (empty if no subnet contains it).
        """
        subnet = self.subnet_for(ip)
        return [] if subnet is None else self.owners(subnet)

    def home_for(self, ip: IPv4Address) -> IPv4Address | None:
        """
        Return the home node for C{ip}: the lowest address among the nodes
        serving its subnet, or C{None} if no node serves it.
        """
        nodes = self.nodes_for(ip)
        return nodes[0] if nodes else None

    def serves(self, node: IPv4Address, ip: IPv4Address) -> bool:
        """
        Return whether one of C{node}'s subnets contains C{ip}.
        """
        return any(ip in subnet for subnet in self._by_node.get(node, ()))
