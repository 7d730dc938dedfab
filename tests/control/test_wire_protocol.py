# -*- test-case-name: tests.control.test_wire_protocol -*-
"""
Tests for L{roaming.control.protocol}: identification, validation and error
answers, role checks, timeouts and flow control, over real TLS in memory.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import attrs
import pytest
from OpenSSL import SSL
from twisted.internet.address import IPv4Address as TCPAddress
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.protocols import amp
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from zope.interface import implementer

from roaming.control import commands, messages
from roaming.control.commands import NodeRole
from roaming.control.protocol import (
    MAX_BOX_KEYS,
    ConnectionCounters,
    ConnectionSettings,
    ControlProtocol,
)
from roaming.control.tls import ClientTLS, ServerTLS
from tests.control.test_tls_support import LogCapture, TestAuthority, connect_in_memory

SC_IP = "10.0.0.1"
AP_IP = "10.1.0.10"
MAC = bytes.fromhex("020000000001")


@attrs.define(eq=False)
class FakeNode:
    """
    A node that records what its connections report.
    """

    address: IPv4Address
    role: NodeRole
    clock: Clock
    settings: ConnectionSettings = attrs.field(factory=ConnectionSettings)
    counters: ConnectionCounters = attrs.field(factory=ConnectionCounters)
    identified: list = attrs.field(factory=list)
    received: list = attrs.field(factory=list)
    lost: list = attrs.field(factory=list)
    #: Called with each message; its result or exception is the answer.
    handler: object = None
    #: What L{commit_barrier} returns.
    barrier: object = None

    def connection_identified(self, connection) -> None:
        self.identified.append(connection)

    def message_received(self, connection, message):
        self.received.append((connection.peer, message))
        if self.handler is not None:
            return self.handler(message)
        return None

    def connection_lost(self, connection, reason) -> None:
        self.lost.append((connection, reason))

    def commit_barrier(self):
        return self.barrier


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


@attrs.define
class Pair:
    sc: FakeNode
    ap: FakeNode
    server: object
    client: object
    pump: object
    clock: Clock
    capture: LogCapture

    @property
    def ap_connection(self) -> ControlProtocol:
        return self.client.wrappedProtocol

    @property
    def sc_connection(self) -> ControlProtocol:
        return self.server.wrappedProtocol


def factory_of(build) -> Factory:
    factory = Factory()
    factory.buildProtocol = lambda address: build()
    return factory


def connect(
    authority: TestAuthority,
    *,
    settings: ConnectionSettings | None = None,
    ap_names=(AP_IP,),
    sc_names=(SC_IP,),
    ap_address: str = AP_IP,
    client_protocol=None,
) -> Pair:
    clock = Clock()
    settings = settings if settings is not None else ConnectionSettings()
    sc = FakeNode(IPv4Address(SC_IP), NodeRole.SC, clock, settings)
    ap = FakeNode(IPv4Address(ap_address), NodeRole.AP, clock, settings)
    capture = LogCapture()
    server_factory = factory_of(lambda: _with_log(ControlProtocol(sc), capture.logger))
    if client_protocol is None:
        client_factory = factory_of(
            lambda: _with_log(ControlProtocol(ap, IPv4Address(SC_IP)), capture.logger)
        )
    else:
        client_factory = factory_of(client_protocol)
    server, client, pump = connect_in_memory(
        server_factory,
        client_factory,
        ServerTLS(authority.node(list(sc_names))),
        ClientTLS(authority.node(list(ap_names)), SC_IP),
        server_address=SC_IP,
        client_address=AP_IP,
        clock=clock,
    )
    return Pair(sc, ap, server, client, pump, clock, capture)


def _with_log(protocol: ControlProtocol, logger: Logger) -> ControlProtocol:
    protocol.log = logger
    return protocol


def results(deferred: Deferred) -> list:
    collected: list = []
    deferred.addBoth(collected.append)
    return collected


class RawCommand(amp.Command):
    """
    An ApAddTraveler with free-form arguments, to send invalid values.
    """

    commandName = b"ApAddTraveler"
    arguments = [(b"mac", amp.String()), (b"ip", amp.String(optional=True))]
    errors = commands.ERRORS
    fatalErrors = commands.FATAL_ERRORS


def test_identify_both_sides(authority: TestAuthority) -> None:
    """
    After the handshake both ends know the peer's address and role.
    """
    pair = connect(authority)
    assert pair.sc.identified == [pair.sc_connection]
    assert pair.ap.identified == [pair.ap_connection]
    assert pair.sc_connection.peer == IPv4Address(AP_IP)
    assert pair.sc_connection.peer_role is NodeRole.AP
    assert pair.ap_connection.peer == IPv4Address(SC_IP)
    assert pair.ap_connection.peer_role is NodeRole.SC


def test_messages_delivered_in_order(authority: TestAuthority) -> None:
    """
    Messages arrive in order and each answer is empty.
    """
    pair = connect(authority)
    register = messages.ApRegister(IPv4Address(AP_IP), [IPv4Network("10.1.0.0/24")])
    notice = messages.ApAddTraveler(MAC, IPv4Address("10.2.0.7"), 24)
    answers: list = []
    pair.ap_connection.send(register).addBoth(answers.append)
    pair.ap_connection.send(notice).addBoth(answers.append)
    pair.pump.flush()
    assert pair.sc.received == [(IPv4Address(AP_IP), register), (IPv4Address(AP_IP), notice)]
    assert answers == [{}, {}]
    assert pair.ap.counters.sent == 2
    assert pair.sc.counters.received == 2


def test_invalid_argument_answered(authority: TestAuthority) -> None:
    """
    A MAC address of the wrong length gets an INVALID answer, and the
    connection keeps working.
    """
    pair = connect(authority)
    answers = results(pair.ap_connection.callRemote(RawCommand, mac=b"xx", ip=b"10.2.0.7"))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.RemoteInvalidMessageError)
    assert "invalid mac: 2 bytes, expected 6" in str(answers[0].value)
    assert pair.sc.counters.errors_sent[b"INVALID"] == 1
    assert pair.sc.received == []
    follow_up = results(pair.ap_connection.send(messages.ApDeleteTraveler(MAC)))
    pair.pump.flush()
    assert follow_up == [{}]
    assert pair.sc.received == [(IPv4Address(AP_IP), messages.ApDeleteTraveler(MAC))]


def test_missing_argument_answered(authority: TestAuthority) -> None:
    """
    A missing required argument gets an INVALID answer.
    """
    pair = connect(authority)
    answers = results(pair.ap_connection.callRemote(RawCommand, mac=MAC))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.RemoteInvalidMessageError)
    assert pair.sc_connection.identified


def test_failed_validation_answered(authority: TestAuthority) -> None:
    """
    A value that parses but fails the message's validation (a group MAC
    address) gets an INVALID answer.
    """
    pair = connect(authority)
    group = bytes.fromhex("01005e000001")
    answers = results(pair.ap_connection.callRemote(RawCommand, mac=group, ip=b"10.2.0.7"))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.RemoteInvalidMessageError)
    assert "group address" in str(answers[0].value)


def test_role_restriction(authority: TestAuthority) -> None:
    """
    An AP may not send an SC-to-SC notice.
    """
    pair = connect(authority)
    answers = results(pair.ap_connection.send(messages.MscDeleteVisitor(MAC)))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.NotAllowedError)
    assert pair.sc.received == []
    assert pair.ap.counters.remote_errors[b"NOT_ALLOWED"] == 1


def test_core_error_answered(authority: TestAuthority) -> None:
    """
    A core exception becomes its declared error code.
    """
    pair = connect(authority)

    def handler(message):
        raise messages.NoHomeAccessPointError(message.mac, None)

    pair.sc.handler = handler
    answers = results(pair.ap_connection.send(messages.ApDeleteTraveler(MAC)))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.RemoteNoHomeAccessPointError)
    assert "no home AP for client 02:00:00:00:00:01" in str(answers[0].value)
    assert pair.sc.counters.errors_sent[b"NO_HOME_AP"] == 1


def test_bug_answered_internal(authority: TestAuthority) -> None:
    """
    An unexpected exception is logged and answered INTERNAL; the connection
    stays open.
    """
    pair = connect(authority)

    def handler(message):
        raise KeyError("bug")

    pair.sc.handler = handler
    answers = results(pair.ap_connection.send(messages.ApDeleteTraveler(MAC)))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.RemoteInternalError)
    assert pair.sc_connection.identified
    failures = [event for event in pair.capture.events if "log_failure" in event]
    assert len(failures) == 1


def test_deferred_result(authority: TestAuthority) -> None:
    """
    A node may answer later through a Deferred.
    """
    pair = connect(authority)
    later: Deferred = Deferred()
    pair.sc.handler = lambda message: later
    answers = results(pair.ap_connection.send(messages.ApDeleteTraveler(MAC)))
    pair.pump.flush()
    assert answers == []
    later.callback(None)
    pair.pump.flush()
    assert answers == [{}]


def test_answer_waits_for_commit(authority: TestAuthority) -> None:
    """
    The answer to a message waits for the node's commit barrier, and a
    failed commit is answered INTERNAL.
    """
    pair = connect(authority)
    committed: Deferred = Deferred()
    pair.sc.barrier = committed
    answers = results(pair.ap_connection.send(messages.ApDeleteTraveler(MAC)))
    pair.pump.flush()
    assert answers == []
    committed.callback(None)
    pair.pump.flush()
    assert answers == [{}]

    failed: Deferred = Deferred()
    pair.sc.barrier = failed
    answers = results(pair.ap_connection.send(messages.ApDeleteTraveler(MAC)))
    pair.pump.flush()
    failed.errback(OSError("disk full"))
    pair.pump.flush()
    assert len(answers) == 1
    assert isinstance(answers[0].value, commands.RemoteInternalError)


def test_command_before_identify(authority: TestAuthority) -> None:
    """
    A command before Identify is answered NOT_IDENTIFIED.
    """
    client = amp.AMP()
    pair = connect(authority, client_protocol=lambda: client)
    answers = results(client.callRemote(commands.DeleteVisitorCommand, mac=MAC))
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.NotIdentifiedError)
    assert pair.sc.received == []


def test_identity_not_in_certificate(authority: TestAuthority) -> None:
    """
    A peer that identifies as an address its certificate lacks is rejected
    with IDENTITY, the connection closes and the log names the reason.
    """
    pair = connect(authority, ap_names=(AP_IP,), ap_address="10.1.0.99")
    assert pair.sc.identified == []
    assert pair.ap.identified == []
    assert pair.sc.counters.identity_mismatches == 1
    reasons = [event.get("reason") for event in pair.capture.events]
    assert "wrong-identity" in reasons
    assert pair.pump.clientIO.disconnected
    assert pair.pump.serverIO.disconnected


def test_dialled_peer_mismatch(authority: TestAuthority) -> None:
    """
    A client closes a connection whose server identifies as another node
    than the one dialled, even if the certificate names both.
    """
    pair = connect_with_sc_address(authority, "10.0.0.2")
    pair.pump.flush()
    assert pair.ap.identified == []
    assert pair.ap.counters.identity_mismatches == 1
    assert pair.pump.clientIO.disconnected


def connect_with_sc_address(authority: TestAuthority, address: str) -> Pair:
    clock = Clock()
    settings = ConnectionSettings()
    sc = FakeNode(IPv4Address(address), NodeRole.SC, clock, settings)
    ap = FakeNode(IPv4Address(AP_IP), NodeRole.AP, clock, settings)
    capture = LogCapture()
    server, client, pump = connect_in_memory(
        factory_of(lambda: ControlProtocol(sc)),
        factory_of(lambda: _with_log(ControlProtocol(ap, IPv4Address(SC_IP)), capture.logger)),
        ServerTLS(authority.node([SC_IP, address])),
        ClientTLS(authority.node([AP_IP]), SC_IP),
        server_address=SC_IP,
        client_address=AP_IP,
        clock=clock,
    )
    return Pair(sc, ap, server, client, pump, clock, capture)


def test_identify_timeout(authority: TestAuthority) -> None:
    """
    A client that completes TLS but never identifies is aborted after
    C{identify_timeout} seconds.
    """
    settings = ConnectionSettings(identify_timeout=5.0)
    pair = connect(authority, settings=settings, client_protocol=amp.AMP)
    pair.clock.advance(4.9)
    assert not pair.server.transport.disconnecting
    pair.clock.advance(0.2)
    assert pair.server.transport.disconnecting
    assert pair.sc.counters.identify_timeouts == 1


def test_silent_peer_aborted(authority: TestAuthority) -> None:
    """
    A peer that stops sending after identification is aborted once nothing
    has arrived for C{idle_timeout} seconds.
    """
    settings = ConnectionSettings(keepalive_interval=5.0, idle_timeout=15.0)
    pair = connect(authority, settings=settings)
    connection = pair.ap_connection
    pair.pump.serverIO.write = lambda data: None
    for _ in range(2):
        pair.clock.advance(5.0)
        pair.pump.flush()
    assert pair.ap.counters.idle_timeouts == 0
    pair.clock.advance(5.0)
    pair.pump.flush()
    assert pair.ap.counters.idle_timeouts == 1
    assert [lost for lost, _ in pair.ap.lost] == [connection]


def test_keepalives_keep_idle_connection(authority: TestAuthority) -> None:
    """
    Keepalives keep a connection without traffic open indefinitely.
    """
    settings = ConnectionSettings(keepalive_interval=5.0, idle_timeout=15.0)
    pair = connect(authority, settings=settings)
    for _ in range(20):
        pair.clock.advance(5.0)
        pair.pump.flush()
    assert pair.ap.counters.idle_timeouts == 0
    assert pair.sc.counters.idle_timeouts == 0
    assert pair.ap.lost == []
    # Keepalives are answered by the protocol and never reach the node.
    assert pair.sc.received == []
    assert pair.sc.counters.received >= 19


def test_outstanding_commands_bounded(authority: TestAuthority) -> None:
    """
    At most C{max_outstanding} commands await an answer; the rest queue.
    """
    settings = ConnectionSettings(max_outstanding=2, max_queued=100)
    pair = connect(authority, settings=settings)
    for _ in range(10):
        pair.ap_connection.post(messages.ApDeleteTraveler(MAC))
    assert pair.ap_connection.outstanding == 2
    assert pair.ap_connection.queued == 8
    pair.pump.flush()
    assert pair.ap_connection.outstanding == 0
    assert len(pair.sc.received) == 10


def test_paused_connection_queues(authority: TestAuthority) -> None:
    """
    While the transport is paused (the peer is not reading), messages queue
    and reading stops; on resume they are sent.
    """
    pair = connect(authority)
    connection = pair.ap_connection
    pauses = pair.ap.counters.pauses
    connection.pauseProducing()
    for _ in range(5):
        connection.post(messages.ApDeleteTraveler(MAC))
    pair.pump.flush()
    assert connection.queued == 5
    assert pair.sc.received == []
    assert pair.ap.counters.pauses == pauses + 1
    connection.resumeProducing()
    pair.pump.flush()
    assert connection.queued == 0
    assert len(pair.sc.received) == 5


def test_queue_overflow_disconnects(authority: TestAuthority) -> None:
    """
    A peer that does not read for long enough to fill the queue is
    disconnected and the overflow counted.
    """
    settings = ConnectionSettings(max_queued=10)
    pair = connect(authority, settings=settings)
    connection = pair.ap_connection
    connection.pauseProducing()
    outcomes = [results(connection.send(messages.ApDeleteTraveler(MAC))) for _ in range(11)]
    assert outcomes[-1] and isinstance(outcomes[-1][0].value, RuntimeError)
    assert pair.ap.counters.queue_overflows == 1
    pair.pump.flush()
    assert pair.ap.lost
    # The queued messages fail with the connection.
    assert all(outcome for outcome in outcomes[:-1])


def test_pause_propagates_from_transport(authority: TestAuthority) -> None:
    """
    The protocol is registered as the TCP transport's producer, so a full
    send buffer pauses it.
    """
    pair = connect(authority)
    tcp = pair.pump.clientIO
    assert tcp.producer is pair.ap_connection
    pauses = pair.ap.counters.pauses
    tcp.producer.pauseProducing()
    assert pair.ap.counters.pauses == pauses + 1
    tcp.producer.resumeProducing()
    pair.ap_connection.post(messages.ApDeleteTraveler(MAC))
    pair.pump.flush()
    assert len(pair.sc.received) == 1


def test_box_with_too_many_keys(authority: TestAuthority) -> None:
    """
    A box with more keys than any command needs disconnects the peer.
    """
    client = amp.AMP()
    pair = connect(authority, client_protocol=lambda: client)
    box = amp.AmpBox({f"k{index}".encode(): b"v" for index in range(MAX_BOX_KEYS + 1)})
    client.transport.write(box.serialize())
    pair.pump.flush()
    assert pair.sc.counters.oversized_boxes == 1
    assert pair.server.transport.disconnected or pair.server.transport.disconnecting


def test_unknown_command_keeps_connection(authority: TestAuthority) -> None:
    """
    An unknown command gets AMP's UNHANDLED answer without closing.
    """
    pair = connect(authority)

    class Unknown(amp.Command):
        commandName = b"NoSuchCommand"

    answers = results(pair.ap_connection.callRemote(Unknown))
    pair.pump.flush()
    assert isinstance(answers[0].value, amp.UnhandledCommand | amp.UnknownRemoteError)
    assert pair.sc_connection.identified


def test_second_identify_rejected(authority: TestAuthority) -> None:
    """
    Identify is accepted once per connection.
    """
    pair = connect(authority)
    answers = results(
        pair.ap_connection.callRemote(
            commands.Identify, node=IPv4Address(AP_IP), role=NodeRole.AP.value
        )
    )
    pair.pump.flush()
    assert isinstance(answers[0].value, commands.NotIdentifiedError)
    assert pair.sc.identified == [pair.sc_connection]


def accept_raw(authority: TestAuthority, client_factory, client_tls=None):
    """
    Accept one connection on an SC's ControlProtocol from C{client_factory},
    wrapped in C{client_tls} if given, and return the SC node, the log
    capture and the pump.
    """
    clock = Clock()
    sc = FakeNode(IPv4Address(SC_IP), NodeRole.SC, clock)
    capture = LogCapture()
    server_factory = factory_of(lambda: _with_log(ControlProtocol(sc), capture.logger))
    server_wrapper = TLSMemoryBIOFactory(
        ServerTLS(authority.node([SC_IP])), False, server_factory, clock=clock
    )
    if client_tls is not None:
        client_factory = TLSMemoryBIOFactory(client_tls, True, client_factory, clock=clock)
    server_host = TCPAddress("TCP", SC_IP, 7443)
    client_host = TCPAddress("TCP", AP_IP, 40001)
    server = server_wrapper.buildProtocol(client_host)
    client = client_factory.buildProtocol(server_host)
    pump = iosim.connect(
        server,
        iosim.FakeTransport(server, True, hostAddress=server_host, peerAddress=client_host),
        client,
        iosim.FakeTransport(client, False, hostAddress=client_host, peerAddress=server_host),
        greet=True,
        clock=clock,
    )
    return sc, capture, client, pump


@implementer(IOpenSSLClientConnectionCreator)
class _NoCertificateClient:
    """
    A TLS client that presents no certificate.
    """

    def clientConnectionForTLS(self, tls_protocol) -> SSL.Connection:
        context = SSL.Context(SSL.TLS_METHOD)
        connection = SSL.Connection(context, None)
        connection.set_connect_state()
        return connection


def warnings_with_reason(capture: LogCapture, reason: str) -> list[dict]:
    return [
        event
        for event in capture.events
        if event.get("reason") == reason and event["log_level"] is LogLevel.warn
    ]


def test_client_without_certificate_rejected(authority: TestAuthority) -> None:
    """
    A TLS client without a certificate gets one warning with the reason
    no-certificate, and is counted.
    """
    sc, capture, _, pump = accept_raw(authority, factory_of(Protocol), _NoCertificateClient())
    pump.flush()

    assert sc.counters.tls_rejected["no-certificate"] == 1
    warnings = warnings_with_reason(capture, "no-certificate")
    assert len(warnings) == 1
    assert "peer did not return a certificate" in warnings[0]["detail"]
    assert sc.identified == []


def test_plain_tcp_client_rejected(authority: TestAuthority) -> None:
    """
    A client that speaks plain TCP (here an HTTP request) gets one warning
    with the reason not-tls, and is counted.
    """
    sc, capture, client, pump = accept_raw(authority, factory_of(Protocol))
    client.transport.write(b"GET / HTTP/1.0\r\n\r\n")
    pump.flush()

    assert sc.counters.tls_rejected["not-tls"] == 1
    assert len(warnings_with_reason(capture, "not-tls")) == 1


def test_key_too_long_logged(authority: TestAuthority) -> None:
    """
    A box with a key over 255 bytes closes the connection with a warning
    that names the reason.
    """
    client = amp.AMP()
    pair = connect(authority, client_protocol=lambda: client)
    client.transport.write(b"\x01\x00" + b"k" * 256 + b"\x00\x01v\x00\x00")
    pair.pump.flush()

    assert pair.sc.counters.protocol_errors["malformed-box"] == 1
    warnings = warnings_with_reason(pair.capture, "malformed-box")
    assert "256 bytes" in warnings[0]["detail"]
    assert pair.pump.serverIO.disconnecting or pair.pump.serverIO.disconnected


def test_box_without_command_logged(authority: TestAuthority) -> None:
    """
    A box with neither _command, _answer nor _error aborts the connection
    with a warning, instead of an unhandled NoEmptyBoxes.
    """
    client = amp.AMP()
    pair = connect(authority, client_protocol=lambda: client)
    client.transport.write(amp.AmpBox({b"abc": b"x"}).serialize())
    pair.pump.flush()

    assert pair.sc.counters.protocol_errors["box-without-command"] == 1
    assert len(warnings_with_reason(pair.capture, "box-without-command")) == 1
    assert pair.pump.serverIO.disconnected


def test_unknown_answer_counted(authority: TestAuthority) -> None:
    """
    An _answer for a command never sent is counted and logged, without an
    unhandled KeyError, and the connection stays open.
    """
    pair = connect(authority)
    pair.pump.flush()
    observed: list[dict] = []
    globalLogPublisher.addObserver(observed.append)
    try:
        pair.ap_connection.transport.write(amp.AmpBox({b"_answer": b"999"}).serialize())
        pair.pump.flush()
    finally:
        globalLogPublisher.removeObserver(observed.append)

    assert pair.sc.counters.protocol_errors["unknown-answer"] == 1
    assert len(warnings_with_reason(pair.capture, "unknown-answer")) == 1
    assert [event for event in observed if event.get("log_failure") is not None] == []
    assert not pair.pump.serverIO.disconnected
    pair.ap_connection.post(messages.ApDeleteTraveler(MAC))
    pair.pump.flush()
    assert len(pair.sc.received) == 1


def test_identify_timeouts_rate_limited(authority: TestAuthority) -> None:
    """
    Of many connections that never identify, the first ten and then every
    hundredth are logged, and all are counted.
    """
    settings = ConnectionSettings()
    clock = Clock()
    sc = FakeNode(IPv4Address(SC_IP), NodeRole.SC, clock, settings)
    capture = LogCapture()
    for _ in range(120):
        connection = _with_log(ControlProtocol(sc), capture.logger)
        connection.makeConnection(StringTransport(peerAddress=TCPAddress("TCP", AP_IP, 1)))
    clock.advance(settings.identify_timeout)

    assert sc.counters.identify_timeouts == 120
    logged = [event for event in capture.events if "did not identify" in event["log_format"]]
    assert [event["count"] for event in logged] == [*range(1, 11), 100]


def test_not_reading_logged_once(authority: TestAuthority) -> None:
    """
    A paused peer that keeps getting answers is disconnected with one
    warning whose counts are those that triggered it.
    """
    settings = ConnectionSettings(max_queued=3)
    pair = connect(authority, settings=settings)
    connection = pair.sc_connection
    connection.pauseProducing()
    for _ in range(10):
        connection.sendBox(amp.AmpBox({b"_command": b"Nothing", b"_ask": b"1"}))

    assert pair.sc.counters.queue_overflows == 1
    logged = [event for event in pair.capture.events if "not reading" in event["log_format"]]
    assert len(logged) == 1
    assert logged[0]["written"] == 4
    assert logged[0]["limit"] == 3
