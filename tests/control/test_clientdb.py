"""
Tests for the client database and the subnet table.
"""

from __future__ import annotations

import sqlite3
from ipaddress import IPv4Address, IPv4Network

import pytest
from test_core_support import Network

from roaming.control.actions import AddStaticEntry, SetSourceEntry
from roaming.control.clientdb import (
    SCHEMA_VERSION,
    ClientDatabase,
    ClientRecord,
    DatabaseFullError,
    DatabaseVersionError,
    SubnetTable,
    Traveler,
    Visitor,
)
from roaming.control.messages import AddTraveler, MscDeleteVisitor
from roaming.control.sc import ServiceController

MAC1, MAC2, MAC3 = (bytes([2, 0, 0, 0, 0, n]) for n in (1, 2, 3))
AP1, AP2 = IPv4Address("10.1.0.11"), IPv4Address("10.2.0.21")
SC1, SC2 = IPv4Address("10.255.0.1"), IPv4Address("10.255.0.2")
SC3 = IPv4Address("10.255.0.3")


def full_record(mac: bytes = MAC1, updated: float = 1.0) -> ClientRecord:
    return ClientRecord(
        mac,
        ip=IPv4Address("10.1.0.100"),
        prefix=24,
        vap_id=3,
        vlan_id=100,
        current_ap=AP2,
        last_visited_ap=AP2,
        home_ap=AP1,
        home_sc=SC1,
        pmk_cache=b"\x01" * 48,
        updated=updated,
    )


STORAGE = pytest.mark.parametrize("storage", [":memory:", None], ids=["sqlite", "no-sqlite"])


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "clients.sqlite")


@STORAGE
def test_put_get_every_field(storage: str | None) -> None:
    """
    A stored client comes back with every field.
    """
    db = ClientDatabase(storage)
    db.put(full_record())
    assert db.get(MAC1) == full_record()
    assert db.get(MAC2) is None
    assert len(db) == 1


def test_restart_keeps_clients(path: str) -> None:
    """
    Closing and reopening the file keeps clients, travelers and visitors.
    """
    db = ClientDatabase(path)
    db.put(full_record())
    db.put(ClientRecord(MAC2))
    db.put_traveler(Traveler(MAC1, SC2, AP1, 5.0, 100))
    db.put_traveler(Traveler(MAC3, SC1, None, 6.0))
    db.put_visitor(Visitor(MAC2, AP2, SC1, 7.0, 4094))
    db.close()

    reopened = ClientDatabase(path)

    assert reopened.get(MAC1) == full_record()
    assert reopened.get(MAC2) == ClientRecord(MAC2)
    assert sorted(reopened.travelers(), key=lambda t: t.mac) == [
        Traveler(MAC1, SC2, AP1, 5.0, 100),
        Traveler(MAC3, SC1, None, 6.0),
    ]
    assert reopened.visitors() == [Visitor(MAC2, AP2, SC1, 7.0, 4094)]


def test_restart_after_delete(path: str) -> None:
    """
    Deletions are persisted too.
    """
    db = ClientDatabase(path)
    db.put(full_record())
    db.put_traveler(Traveler(MAC1, SC2, AP1))
    db.put_visitor(Visitor(MAC1, AP2, SC1))
    db.delete(MAC1)
    assert db.delete_traveler(MAC1) == Traveler(MAC1, SC2, AP1)
    assert db.delete_visitor(MAC1) == Visitor(MAC1, AP2, SC1)
    assert db.delete_traveler(MAC1) is None
    db.close()

    reopened = ClientDatabase(path)
    assert len(reopened) == 0
    assert reopened.travelers() == []
    assert reopened.visitors() == []


def test_schema_version_recorded(path: str) -> None:
    """
    The schema version is SQLite's user_version.
    """
    ClientDatabase(path).close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    connection.close()


def test_unknown_schema_version(path: str) -> None:
    """
    A file from another schema version is rejected with its path and
    version in the message.
    """
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    with pytest.raises(DatabaseVersionError) as raised:
        ClientDatabase(path)
    assert path in str(raised.value)
    assert "99" in str(raised.value)


@STORAGE
def test_eviction_skips_roaming_clients(storage: str | None) -> None:
    """
    A full client table evicts the least recently updated client that is
    neither a traveler nor a visitor.
    """
    db = ClientDatabase(storage, max_clients=2)
    db.put(full_record(MAC1, updated=1.0))
    db.put(full_record(MAC2, updated=2.0))
    db.put_traveler(Traveler(MAC1, SC2, AP1))

    db.put(full_record(MAC3, updated=3.0))

    assert db.get(MAC1) is not None
    assert db.get(MAC2) is None
    assert db.get(MAC3) is not None


@STORAGE
def test_eviction_follows_updates(storage: str | None) -> None:
    """
    Updating a client makes it the most recent, so the other one goes.
    """
    db = ClientDatabase(storage, max_clients=2)
    db.put(full_record(MAC1, updated=1.0))
    db.put(full_record(MAC2, updated=2.0))
    db.put(full_record(MAC1, updated=3.0))

    db.put(full_record(MAC3, updated=4.0))

    assert db.get(MAC1) is not None
    assert db.get(MAC2) is None


def test_eviction_order_survives_restart(path: str) -> None:
    """
    A reopened file evicts by the stored update times.
    """
    db = ClientDatabase(path, max_clients=2)
    db.put(full_record(MAC2, updated=5.0))
    db.put(full_record(MAC1, updated=1.0))
    db.close()

    reopened = ClientDatabase(path, max_clients=2)
    reopened.put(full_record(MAC3, updated=6.0))

    assert reopened.get(MAC1) is None
    assert reopened.get(MAC2) is not None
    reopened.close()
    assert ClientDatabase(path).get(MAC1) is None


@STORAGE
def test_eviction_impossible(storage: str | None) -> None:
    """
    A table full of travelers raises instead of dropping one.
    """
    db = ClientDatabase(storage, max_clients=1)
    db.put(full_record(MAC1))
    db.put_traveler(Traveler(MAC1, SC2, AP1))
    with pytest.raises(DatabaseFullError, match="max_clients"):
        db.put(full_record(MAC2))
    assert db.get(MAC2) is None


def test_replace_does_not_evict() -> None:
    """
    Replacing a stored client never evicts another.
    """
    db = ClientDatabase(max_clients=1)
    db.put(full_record(MAC1, updated=1.0))
    db.put(full_record(MAC1, updated=2.0))
    assert db.get(MAC1).updated == 2.0


@STORAGE
def test_traveler_and_visitor_bounds(storage: str | None) -> None:
    """
    The traveler and visitor tables each hold at most max_clients rows.
    """
    db = ClientDatabase(storage, max_clients=1)
    db.put_traveler(Traveler(MAC1, SC2, AP1))
    db.put_visitor(Visitor(MAC1, AP2, SC1))
    db.put_traveler(Traveler(MAC1, SC1, AP1))
    with pytest.raises(DatabaseFullError, match="travelers"):
        db.put_traveler(Traveler(MAC2, SC2, AP1))
    with pytest.raises(DatabaseFullError, match="visitors"):
        db.put_visitor(Visitor(MAC2, AP2, SC1))


def test_failed_write_leaves_memory_unchanged(path: str) -> None:
    """
    A write that SQLite rejects changes neither the file nor the cached
    rows.
    """
    db = ClientDatabase(path)
    db.put(full_record(MAC1))
    db._connection.execute(
        "CREATE TRIGGER deny BEFORE INSERT ON client BEGIN SELECT RAISE(ABORT, 'denied'); END"
    )

    with pytest.raises(sqlite3.IntegrityError):
        db.put(full_record(MAC2))

    assert db.get(MAC2) is None
    db.close()
    assert ClientDatabase(path).get(MAC2) is None


@STORAGE
def test_travelers_by_home_ap(storage: str | None) -> None:
    """
    Travelers are found by home AP, and the index follows replacements and
    deletions.
    """
    db = ClientDatabase(storage)
    db.put_traveler(Traveler(MAC2, SC2, AP1))
    db.put_traveler(Traveler(MAC1, SC2, AP1))
    db.put_traveler(Traveler(MAC3, SC2, None))
    assert [t.mac for t in db.travelers_with_home_ap(AP1)] == [MAC1, MAC2]
    assert [t.mac for t in db.travelers_with_home_ap(None)] == [MAC3]

    db.put_traveler(Traveler(MAC2, SC2, AP2))
    db.delete_traveler(MAC1)

    assert db.travelers_with_home_ap(AP1) == []
    assert [t.mac for t in db.travelers_with_home_ap(AP2)] == [MAC2]


def test_travelers_by_home_ap_after_restart(path: str) -> None:
    """
    The home AP index is rebuilt from the file.
    """
    db = ClientDatabase(path)
    db.put_traveler(Traveler(MAC1, SC2, AP1))
    db.close()
    assert [t.mac for t in ClientDatabase(path).travelers_with_home_ap(AP1)] == [MAC1]


def test_max_clients_must_be_positive() -> None:
    """
    A database without room for one client is a configuration error.
    """
    with pytest.raises(ValueError, match="max_clients"):
        ClientDatabase(max_clients=0)


def test_sc_restart_keeps_roam(path: str) -> None:
    """
    A home SC restarted on the same file still has its traveler, and
    ends the visit when the client comes home.
    """
    net = Network(primary="10.255.0.1")
    net.add_sc("10.255.0.1")
    net.add_sc("10.255.0.2", database=ClientDatabase(path))
    net.add_ap("10.2.0.21", "10.255.0.2", "10.2.0.0/24")
    net.add_ap("10.1.0.11", "10.255.0.1", "10.1.0.0/24")
    client_ip = IPv4Address("10.2.0.100")
    net.event("10.2.0.21", "station_associated", MAC1)
    net.event("10.2.0.21", "client_ip_seen", MAC1, client_ip, prefix=24)
    net.event("10.1.0.11", "station_associated", MAC1)
    traveler = net.sc("10.255.0.2").db.get_traveler(MAC1)
    assert traveler.foreign_sc == SC1
    net.sc("10.255.0.2").db.close()

    restarted = net.restart_sc("10.255.0.2", ClientDatabase(path))

    assert restarted.db.get_traveler(MAC1) == traveler
    assert restarted.db.get(MAC1).home_ap == AP2
    assert restarted.db.get(MAC1).ip == client_ip
    # The new process puts the bridge entries back and notifies the home AP
    # again, which may have lost its connection too.
    assert net.bridge("10.255.0.2").static == {MAC1: SC1}
    assert net.bridge("10.255.0.2").source == {MAC1: AP2}
    assert ("10.255.0.2", "10.2.0.21", AddTraveler(MAC1)) in net.take_log()
    assert net.ap("10.2.0.21").travelers == {MAC1: 0}
    net.event("10.2.0.21", "station_associated", MAC1)
    assert ("10.255.0.2", "10.255.0.1", MscDeleteVisitor(MAC1)) in net.take_log()
    assert restarted.db.travelers() == []
    assert net.sc("10.255.0.1").db.visitors() == []


def test_foreign_sc_restart_restores_visitor(path: str) -> None:
    """
    A foreign SC started again on the same file puts back the static entry
    towards the AP serving its visitor and the source entry towards the
    visitor's home SC.
    """
    net = Network(primary="10.255.0.1")
    net.add_sc("10.255.0.1")
    net.add_sc("10.255.0.2")
    net.add_sc("10.255.0.3", database=ClientDatabase(path))
    net.add_ap("10.2.0.21", "10.255.0.2", "10.2.0.0/24")
    net.add_ap("10.3.0.31", "10.255.0.3", "10.3.0.0/24")
    net.event("10.2.0.21", "station_associated", MAC1)
    net.event("10.2.0.21", "client_ip_seen", MAC1, IPv4Address("10.2.0.100"), prefix=24)
    net.event("10.3.0.31", "station_associated", MAC1)
    foreign = net.sc("10.255.0.3")
    visitor = foreign.db.get_visitor(MAC1)
    assert visitor == Visitor(MAC1, IPv4Address("10.3.0.31"), SC2, visitor.since)
    foreign.db.close()

    restarted = ServiceController(SC3, ClientDatabase(path), primary=SC1)
    actions = restarted.start(net.now)

    assert AddStaticEntry(MAC1, IPv4Address("10.3.0.31"), 0) in actions
    assert SetSourceEntry(MAC1, SC2, 0) in actions
    restarted.db.close()


# Subnet table.


def test_subnet_table_narrowest_match() -> None:
    """
    The narrowest subnet containing an address decides its home, and the
    lowest address among that subnet's nodes is the home node.
    """
    table = SubnetTable()
    table.set(SC2, [IPv4Network("10.0.0.0/8")])
    table.set(IPv4Address("10.255.0.9"), [IPv4Network("10.1.0.0/24")])
    table.set(IPv4Address("10.255.0.5"), [IPv4Network("10.1.0.0/24")])

    assert table.home_for(IPv4Address("10.1.0.7")) == IPv4Address("10.255.0.5")
    assert table.nodes_for(IPv4Address("10.1.0.7")) == [
        IPv4Address("10.255.0.5"),
        IPv4Address("10.255.0.9"),
    ]
    assert table.home_for(IPv4Address("10.9.0.7")) == SC2
    assert table.home_for(IPv4Address("192.0.2.1")) is None


def test_subnet_table_replace_and_remove() -> None:
    """
    Setting a node's subnets replaces the old ones, and removing the node
    removes them.
    """
    table = SubnetTable()
    table.set(SC1, [IPv4Network("10.1.0.0/24")])
    table.set(SC1, [IPv4Network("10.2.0.0/24")])
    assert table.home_for(IPv4Address("10.1.0.1")) is None
    assert table.serves(SC1, IPv4Address("10.2.0.1"))

    assert table.remove(SC1) == (IPv4Network("10.2.0.0/24"),)
    assert table.subnets() == []
    assert table.home_for(IPv4Address("10.2.0.1")) is None
    assert table.remove(SC1) == ()


def test_subnet_table_bound() -> None:
    """
    The table stores at most max_entries (node, subnet) pairs.
    """
    table = SubnetTable(max_entries=2)
    table.set(SC1, [IPv4Network("10.1.0.0/24"), IPv4Network("10.2.0.0/24")])
    with pytest.raises(DatabaseFullError, match="full"):
        table.set(SC2, [IPv4Network("10.3.0.0/24")])
    table.set(SC1, [IPv4Network("10.3.0.0/24")])
    table.set(SC2, [IPv4Network("10.4.0.0/24")])
    assert table.nodes() == [SC1, SC2]


def stored_macs(path: str, table: str = "client") -> list[bytes]:
    """
    Read the committed rows through a second connection.
    """
    connection = sqlite3.connect(path)
    try:
        return sorted(bytes(mac) for (mac,) in connection.execute(f"SELECT mac FROM {table}"))
    finally:
        connection.close()


def test_batched_commits_on_flush(path: str) -> None:
    """
    A batched database keeps its changes in one open transaction until
    flush commits them.
    """
    db = ClientDatabase(path, batched=True)
    db.put(full_record(MAC1))
    db.put(full_record(MAC2))
    db.put_traveler(Traveler(MAC1, SC2, AP1, 1.0, 0))

    assert db.uncommitted == 3
    assert stored_macs(path) == []
    db.flush()
    assert db.uncommitted == 0
    assert stored_macs(path) == [MAC1, MAC2]
    assert stored_macs(path, "traveler") == [MAC1]
    db.close()


def test_batched_bounded_by_max_batch(path: str) -> None:
    """
    A batched database commits by itself after max_batch changes.
    """
    db = ClientDatabase(path, batched=True, max_batch=2)
    db.put(full_record(MAC1))
    assert stored_macs(path) == []
    db.put(full_record(MAC2))

    assert stored_macs(path) == [MAC1, MAC2]
    assert db.uncommitted == 0
    db.close()


def test_batched_close_commits(path: str) -> None:
    """
    Closing a batched database commits its waiting changes.
    """
    db = ClientDatabase(path, batched=True)
    db.put(full_record(MAC1))
    db.close()

    assert stored_macs(path) == [MAC1]
    assert ClientDatabase(path).get(MAC1) == full_record(MAC1)


def test_batched_failed_change_rolled_back(path: str) -> None:
    """
    A change that fails inside a batch is undone alone; the earlier
    changes of the batch are still committed by the next flush.
    """
    db = ClientDatabase(path, batched=True)
    db.put(full_record(MAC1))
    with pytest.raises(sqlite3.Error):
        db._write(
            ("INSERT INTO client VALUES (?,?,?,?,?,?,?,?,?,?,?)", full_record(MAC2)._row()),
            ("INSERT INTO no_such_table VALUES (1)", ()),
        )
    db.flush()

    assert stored_macs(path) == [MAC1]
    db.close()


def test_batch_limit_validated() -> None:
    """
    A max_batch below 1 is rejected with its value.
    """
    with pytest.raises(ValueError, match="max_batch is 0"):
        ClientDatabase(None, max_batch=0)
