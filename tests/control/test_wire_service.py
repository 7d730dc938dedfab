# -*- test-case-name: tests.control.test_wire_service -*-
"""
Tests for L{roaming.control.service}: SCs and APs with their real role
objects, joined by mutual TLS in memory, run discovery and the roaming
scenarios; the tests check the messages exchanged, the client databases and
the data plane actions, and reconnection after lost or silent peers.
"""

from __future__ import annotations

import pytest

from roaming.control import actions, messages
from roaming.control.actions import AddL3Entry, L3Match, TunnelDown, TunnelUp
from roaming.control.clientdb import ClientDatabase
from roaming.control.protocol import ConnectionSettings
from roaming.control.service import AccessPointBinding, ControlNode, ControlService
from roaming.control.tls import CredentialsError
from tests.control.test_tls_support import TestAuthority
from tests.control.test_wire_support import MemoryNetwork, ip, net

SC1, SC2, SC3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
AP1, AP2, AP3 = "10.1.0.10", "10.2.0.10", "10.1.0.11"
MAC = bytes.fromhex("020000000001")


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


def two_subnets(authority: TestAuthority, **options) -> MemoryNetwork:
    """
    SC1 (primary) with AP1 and AP3 in 10.1.0.0/24, SC2 with AP2 in
    10.2.0.0/24.
    """
    network = MemoryNetwork(authority, **options)
    network.add_sc(SC1, primary=SC1)
    network.add_sc(SC2, primary=SC1)
    network.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    network.add_ap(AP3, controller=SC1, subnets=["10.1.0.0/24"])
    network.add_ap(AP2, controller=SC2, subnets=["10.2.0.0/24"])
    network.start()
    return network


def associate(network: MemoryNetwork, ap: str, mac: bytes, client_ip: str | None) -> None:
    handle = network.nodes[ip(ap)]
    access_point = handle.role_object
    handle.node.run(lambda now: access_point.station_associated(mac, now))
    network.flush()
    if client_ip is not None:
        handle.node.run(lambda now: access_point.client_ip_seen(mac, ip(client_ip), now, prefix=24))
        network.flush()


def since(network: MemoryNetwork, address: str, mark: int) -> list[tuple[str, str]]:
    return network.received_types(address)[mark:]


def test_discovery_over_tls(authority: TestAuthority) -> None:
    """
    Every SC learns the others through the primary, tunnels come up on both
    sides before any client roams, and L3 entries follow the subnets.
    """
    network = MemoryNetwork(authority)
    sc1 = network.add_sc(SC1, primary=SC1)
    sc2 = network.add_sc(SC2, primary=SC1)
    sc3 = network.add_sc(SC3, primary=SC1)
    network.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    network.add_ap(AP2, controller=SC2, subnets=["10.2.0.0/24"])
    network.add_ap("10.3.0.10", controller=SC3, subnets=["10.3.0.0/24"])
    network.start()

    registrations = {sender for sender, kind in network.received_types(SC1) if kind == "ScRegister"}
    assert registrations == {SC2, SC3}
    assert sc2.role_object.discovery.peers() == [ip(SC1), ip(SC3)]
    assert sc3.role_object.discovery.peers() == [ip(SC1), ip(SC2)]
    assert TunnelUp(ip(SC3)) in sc2.data_plane
    assert TunnelUp(ip(SC2)) in sc3.data_plane
    assert TunnelUp(ip(SC2)) in sc1.data_plane
    assert AddL3Entry(net("10.1.0.0/24"), ip(SC1), L3Match.POSITIVE) in sc2.data_plane
    assert AddL3Entry(net("10.3.0.0/24"), ip(SC3), L3Match.POSITIVE) in sc2.data_plane
    # The lower address of each pair opens the SC-to-SC connection.
    assert sc2.node.connection(ip(SC3)).outgoing
    assert not sc3.node.connection(ip(SC2)).outgoing
    for handle in network.nodes.values():
        assert not handle.node.counters.remote_errors
        assert not handle.node.counters.errors_sent


def test_ap_registration(authority: TestAuthority) -> None:
    """
    An AP registers with its SC; both bring the tunnel up and the AP points
    its negative L3 entry at the SC.
    """
    network = two_subnets(authority)
    sc1, ap1 = network.nodes[ip(SC1)], network.nodes[ip(AP1)]
    assert (AP1, "ApRegister") in network.received_types(SC1)
    assert TunnelUp(ip(AP1)) in sc1.data_plane
    assert TunnelUp(ip(SC1)) in ap1.data_plane
    assert AddL3Entry(net("10.1.0.0/24"), ip(SC1), L3Match.NEGATIVE) in ap1.data_plane
    assert sc1.role_object.aps.subnets_of(ip(AP1)) == (net("10.1.0.0/24"),)


def test_roam_to_foreign_subnet(authority: TestAuthority) -> None:
    """
    A client at home on AP1 roams to AP2 in another subnet: the notice chain
    AP2 -> SC2 -> SC1 -> AP1 runs over the wire and AP1 tunnels the
    client's traffic to SC1.
    """
    network = two_subnets(authority)
    associate(network, AP1, MAC, "10.1.0.50")
    marks = {address: len(network.received_types(address)) for address in (SC1, SC2, AP1, AP2)}
    ap1 = network.nodes[ip(AP1)]
    ap1_actions = len(ap1.data_plane)

    associate(network, AP2, MAC, "10.1.0.50")

    assert (AP2, "ApAddTraveler") in since(network, SC2, marks[SC2])
    assert (SC2, "MscAddTraveler") in since(network, SC1, marks[SC1])
    assert (SC1, "AddTraveler") in since(network, AP1, marks[AP1])
    assert (SC1, "IappMove") in since(network, AP1, marks[AP1])
    new_ap1_actions = ap1.data_plane[ap1_actions:]
    assert actions.AddStaticEntry(MAC, ip(SC1), 0) in new_ap1_actions
    assert actions.SetFloodToPeer(ip(SC1), True) in new_ap1_actions
    assert actions.SendLayer2Update(MAC, 0) in new_ap1_actions
    sc1_db = network.nodes[ip(SC1)].role_object.db
    sc2_db = network.nodes[ip(SC2)].role_object.db
    assert sc1_db.get_traveler(MAC) is not None
    assert sc2_db.get_visitor(MAC) is not None
    record = sc1_db.get(MAC)
    assert record.ip == ip("10.1.0.50")
    for handle in network.nodes.values():
        assert not handle.node.counters.remote_errors


def test_return_home(authority: TestAuthority) -> None:
    """
    A traveler that returns to its home AP ends the roam: SC1 sends
    MscDeleteVisitor to SC2, SC2 sends DeleteVisitor to AP2, and AP1 stops
    tunnelling.
    """
    network = two_subnets(authority)
    associate(network, AP1, MAC, "10.1.0.50")
    associate(network, AP2, MAC, "10.1.0.50")
    marks = {address: len(network.received_types(address)) for address in (SC1, SC2, AP2)}
    ap1 = network.nodes[ip(AP1)]
    ap1_actions = len(ap1.data_plane)

    associate(network, AP1, MAC, "10.1.0.50")

    assert (AP1, "ApDeleteTraveler") in since(network, SC1, marks[SC1])
    assert (SC1, "MscDeleteVisitor") in since(network, SC2, marks[SC2])
    assert (SC2, "DeleteVisitor") in since(network, AP2, marks[AP2])
    assert actions.RemoveStaticEntry(MAC, 0) in ap1.data_plane[ap1_actions:]
    assert network.nodes[ip(SC1)].role_object.db.get_traveler(MAC) is None
    assert network.nodes[ip(SC2)].role_object.db.get_visitor(MAC) is None
    assert MAC not in network.nodes[ip(AP2)].role_object.stations


def test_no_home_ap_error_answer(authority: TestAuthority) -> None:
    """
    A traveler notice for a subnet whose home SC has no AP there is
    answered NO_HOME_AP, and the connection stays up.
    """
    network = MemoryNetwork(authority)
    network.add_sc(SC1, primary=SC1, subnets=["10.9.0.0/24"])
    sc2 = network.add_sc(SC2, primary=SC1)
    network.add_ap(AP2, controller=SC2, subnets=["10.2.0.0/24"])
    network.start()

    associate(network, AP2, MAC, "10.9.0.5")

    assert sc2.node.counters.remote_errors[b"NO_HOME_AP"] == 1
    assert network.nodes[ip(SC1)].node.counters.errors_sent[b"NO_HOME_AP"] == 1
    assert sc2.node.connection(ip(SC1)).identified


def test_ap_reconnects_with_backoff(authority: TestAuthority) -> None:
    """
    An AP whose connection drops retries with exponential backoff while the
    SC is unreachable, then registers again.
    """
    network = two_subnets(authority)
    ap1 = network.nodes[ip(AP1)]
    network.unreachable.add(ip(SC1))
    network.drop_connections(AP1, SC1)
    assert ap1.node.connection(ip(SC1)) is None
    assert actions.TunnelDown(ip(SC1)) in ap1.data_plane
    registrations = network.received_types(SC1).count((AP1, "ApRegister"))

    # Attempts after 1, 1.5, 2.25 s and so on all fail.
    network.advance(5.0, step=0.25)
    assert ap1.node.connection(ip(SC1)) is None
    network.unreachable.discard(ip(SC1))
    network.advance(8.0, step=0.25)

    assert ap1.node.connection(ip(SC1)) is not None
    assert network.received_types(SC1).count((AP1, "ApRegister")) == registrations + 1


def test_silent_sc_aborted_and_reconnected(authority: TestAuthority) -> None:
    """
    An SC that completes the handshake and then goes silent is aborted by
    the AP after the idle timeout, and the AP connects again.
    """
    settings = ConnectionSettings(keepalive_interval=2.0, idle_timeout=6.0)
    network = two_subnets(authority, settings=settings)
    ap1 = network.nodes[ip(AP1)]
    first = ap1.node.connection(ip(SC1))
    network.silence(AP1, SC1, "server")

    network.advance(6.0)

    assert ap1.node.counters.idle_timeouts == 1
    network.advance(3.0)
    second = ap1.node.connection(ip(SC1))
    assert second is not None
    assert second is not first
    assert network.received_types(SC1).count((AP1, "ApRegister")) == 2


def test_lost_sc_withdrawn(authority: TestAuthority) -> None:
    """
    When an SC's connection to the primary is lost for good, the primary
    withdraws it and the other SCs bring its tunnel and L3 entries down.
    """
    network = MemoryNetwork(authority)
    network.add_sc(SC1, primary=SC1)
    sc2 = network.add_sc(SC2, primary=SC1)
    sc3 = network.add_sc(SC3, primary=SC1)
    network.add_ap(AP2, controller=SC2, subnets=["10.2.0.0/24"])
    network.add_ap("10.3.0.10", controller=SC3, subnets=["10.3.0.0/24"])
    network.start()

    network.unreachable.add(ip(SC1))
    network.drop_connections(SC3, SC1)

    assert (SC1, "ScWithdraw") in network.received_types(SC2)
    assert TunnelDown(ip(SC3)) in sc2.data_plane
    assert actions.RemoveL3Entry(net("10.3.0.0/24"), ip(SC3)) in sc2.data_plane
    assert ip(SC3) not in sc2.role_object.discovery.peers()
    assert sc3.node.connection(ip(SC1)) is None


def test_messages_wait_for_connection(authority: TestAuthority) -> None:
    """
    A message to a peer without a connection waits (bounded) and is sent
    once the connection is identified.
    """
    network = MemoryNetwork(authority)
    sc1 = network.add_sc(SC1, primary=SC1)
    ap1 = network.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    ap1.node.max_pending = 3
    for index in range(5):
        ap1.node.send(ip(SC1), messages.IappAdd(bytes([2, 0, 0, 0, 0, index + 1])))
    assert ap1.node.node_counters.pending_dropped == 2
    network.start()
    received = [message for _, message in sc1.received if isinstance(message, messages.IappAdd)]
    assert [message.mac[-1] for message in received] == [3, 4, 5]


def test_sc_restart_keeps_clients(authority: TestAuthority, tmp_path) -> None:
    """
    An SC restarted on the same database file still has its clients and
    travelers, and its APs register again.
    """
    path = str(tmp_path / "sc1.sqlite")
    network = MemoryNetwork(authority)
    network.add_sc(SC1, primary=SC1, database=ClientDatabase(path))
    network.add_sc(SC2, primary=SC1)
    network.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    network.add_ap(AP2, controller=SC2, subnets=["10.2.0.0/24"])
    network.start()
    associate(network, AP1, MAC, "10.1.0.50")
    associate(network, AP2, MAC, "10.1.0.50")
    old = network.nodes[ip(SC1)]
    old.service.stopService()
    network.flush()
    old.role_object.db.close()

    restarted = MemoryNetwork(authority)
    sc1 = restarted.add_sc(SC1, primary=SC1, database=ClientDatabase(path))
    restarted.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    restarted.start()

    assert sc1.role_object.db.get(MAC).ip == ip("10.1.0.50")
    assert sc1.role_object.db.get_traveler(MAC) is not None
    assert (AP1, "ApRegister") in restarted.received_types(SC1)


def test_service_refuses_bad_credentials(authority: TestAuthority, tmp_path) -> None:
    """
    A service built from files refuses to start with a missing key, naming
    the file.
    """
    from roaming.control import pki
    from roaming.control.ap import AccessPoint

    credentials = authority.node([AP1])
    pki.write_certificate(tmp_path / "ap.crt", credentials.certificate)
    pki.write_certificate(tmp_path / "ca.crt", authority.certificate)
    access_point = AccessPoint(ip(AP1), ip(SC1), [net("10.1.0.0/24")])
    node = ControlNode(AccessPointBinding(access_point), clock=None, data_plane=print)
    missing = tmp_path / "ap.key"
    with pytest.raises(CredentialsError, match=f"private key {missing} not found"):
        ControlService.from_files(
            node, tmp_path / "ap.crt", missing, tmp_path / "ca.crt", reactor=None
        )


def test_answer_after_commit(authority: TestAuthority, tmp_path) -> None:
    """
    An SC answers an IappAdd only after the client's row is committed, so
    another reader of the file sees the client when the AP gets the answer.
    """
    import sqlite3

    path = str(tmp_path / "sc1.sqlite")
    network = MemoryNetwork(authority)
    sc1 = network.add_sc(SC1, primary=SC1, database=ClientDatabase(path))
    ap1 = network.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    network.start()
    reader = sqlite3.connect(path)
    seen_at_answer: list[int] = []

    def count_rows(_: object) -> None:
        (count,) = reader.execute("SELECT count(*) FROM client WHERE mac = ?", (MAC,)).fetchone()
        seen_at_answer.append(count)

    message = messages.IappAdd(MAC, ip("10.1.0.50"), 24, ap=ip(AP1))
    ap1.node.send(ip(SC1), message).addCallback(count_rows)
    network.flush()
    reader.close()

    assert sc1.role_object.db.batched
    assert sc1.role_object.db.uncommitted == 0
    assert seen_at_answer == [1]


def test_commit_batched_per_turn(authority: TestAuthority, tmp_path) -> None:
    """
    The changes of several messages received in one reactor turn are
    committed together by one flush, not one commit each.
    """
    path = str(tmp_path / "sc1.sqlite")
    network = MemoryNetwork(authority)
    sc1 = network.add_sc(SC1, primary=SC1, database=ClientDatabase(path))
    network.add_ap(AP1, controller=SC1, subnets=["10.1.0.0/24"])
    network.start()
    database = sc1.role_object.db
    flushes: list[int] = []
    flush = database.flush

    def counting_flush() -> None:
        flushes.append(database.uncommitted)
        flush()

    database.flush = counting_flush
    for last in range(1, 6):
        message = messages.IappAdd(MAC[:-1] + bytes([last]), ip(f"10.1.0.{50 + last}"), 24)
        sc1.node.run(lambda now, message=message: sc1.role_object.receive(ip(AP1), message, now))
    assert flushes == []
    network.flush()

    assert len(flushes) == 1
    assert flushes[0] >= 5
    assert len(sc1.role_object.db) == 5


def test_problem_logged_once(authority: TestAuthority) -> None:
    """
    A problem that the role object reports again and again is logged once,
    and again only when its message changes.
    """
    from twisted.logger import Logger

    network = MemoryNetwork(authority)
    sc1 = network.add_sc(SC1, primary=SC1)
    events: list[dict] = []
    sc1.node.log = Logger(namespace="test", observer=events.append)
    first = actions.ReportProblem("too-many-subnets", "SC serves 2051 subnets")
    second = actions.ReportProblem("too-many-subnets", "SC serves 2052 subnets")

    sc1.node.execute([first, first, first])
    sc1.node.execute([second])

    assert [event["problem"] for event in events] == [first.message, second.message]
    assert first not in sc1.data_plane


def test_commit_after_max_uncommitted(tmp_path) -> None:
    """
    The node commits at once when max_uncommitted writes wait, firing the
    waiting answers, instead of waiting for the end of the reactor turn.
    """
    from twisted.internet.task import Clock

    from roaming.control.sc import ServiceController
    from roaming.control.service import ServiceControllerBinding

    database = ClientDatabase(str(tmp_path / "sc.sqlite"))
    controller = ServiceController(ip(SC1), database, primary=ip(SC1))
    clock = Clock()
    node = ControlNode(
        ServiceControllerBinding(controller),
        clock=clock,
        data_plane=lambda action: None,
        max_uncommitted=3,
    )
    node.start()
    clock.advance(0)
    fired: list[int] = []
    for last in range(1, 4):
        message = messages.IappAdd(MAC[:-1] + bytes([last]), ip(f"10.1.0.{50 + last}"), 24)
        node.run(lambda now, message=message: controller.receive(ip(SC1), message, now))
        barrier = node.commit_barrier()
        if barrier is not None:
            barrier.addCallback(lambda _, last=last: fired.append(last))

    assert database.batched
    assert database.uncommitted == 0
    assert fired == [1, 2]
    assert node.commit_barrier() is None


def test_failed_commit_fails_answers(tmp_path) -> None:
    """
    A failed commit of the client database is logged once and fails every
    answer that waits for it, so no peer gets an acknowledgement for a
    change that is not on disk.
    """
    import sqlite3

    from twisted.internet.task import Clock
    from twisted.logger import Logger
    from twisted.python.failure import Failure

    from roaming.control.clientdb import Visitor
    from roaming.control.sc import ServiceController
    from roaming.control.service import ServiceControllerBinding

    path = str(tmp_path / "sc1.sqlite")
    controller = ServiceController(ip(SC1), ClientDatabase(path), primary=ip(SC1))
    clock = Clock()
    data_plane: list[object] = []
    binding = ServiceControllerBinding(controller)
    node = ControlNode(binding, clock=clock, data_plane=data_plane.append)
    logged: list[dict] = []
    node.log = Logger(namespace="test", observer=logged.append)
    database = controller.db
    database.put_visitor(Visitor(MAC, ip(AP1), ip(SC2)))

    def failing_flush() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    database.flush = failing_flush
    waiters = [node.commit_barrier(), node.commit_barrier()]
    results: list[object] = []
    for waiter in waiters:
        assert waiter is not None
        waiter.addBoth(results.append)

    clock.advance(0)

    assert len(results) == 2
    for result in results:
        assert isinstance(result, Failure)
        assert result.check(sqlite3.OperationalError)
    [event] = logged
    assert event["count"] == 2
    assert event["path"] == path
    assert event["log_failure"].check(sqlite3.OperationalError)
    del database.flush
    database.close()
