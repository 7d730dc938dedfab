# -*- test-case-name: tests.daemons.test_localapi -*-
"""
Tests for the limits of L{roaming.tap.localapi}: requests per reactor turn,
unread replies, idle connections and the connection cap, on a memory
transport and a fake clock.
"""

import json

from twisted.internet import task
from twisted.internet.testing import StringTransport

from roaming.tap import localapi
from roaming.tap.localapi import LocalAPIFactory, Table

REQUEST = b'{"request": "counters"}\n'


def counters_view():
    return Table(("name", "value"), [("frames", 3)])


def connect(clock=None, **limits):
    """
    Connect a protocol to a memory transport; return the factory, the
    protocol, the transport and the clock.
    """
    clock = clock or task.Clock()
    factory = LocalAPIFactory({"counters": counters_view}, reactor=clock, **limits)
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return factory, protocol, transport, clock


def replies(transport):
    return [json.loads(line) for line in transport.value().splitlines()]


class TestRequestsPerTurn:
    """
    A burst of requests is served one batch per reactor turn, with reading
    paused in between.
    """

    def test_burst_served_in_batches(self):
        _factory, protocol, transport, _clock = connect()
        protocol.dataReceived(REQUEST * 5000)
        assert len(replies(transport)) == localapi.MAX_LINES_PER_TURN
        assert transport.producerState == "paused"

    def test_burst_finishes_over_turns(self):
        factory, protocol, transport, clock = connect()
        protocol.dataReceived(REQUEST * 100)
        for _turn in range(100):
            clock.advance(0)
        assert len(replies(transport)) == 100
        assert transport.producerState == "producing"
        assert factory.counters["deferred_batches"] == 100 // localapi.MAX_LINES_PER_TURN

    def test_partial_line_waits(self):
        _factory, protocol, transport, _clock = connect()
        protocol.dataReceived(REQUEST + REQUEST[:5])
        assert len(replies(transport)) == 1
        protocol.dataReceived(REQUEST[5:])
        assert len(replies(transport)) == 2

    def test_oversized_request_counted(self):
        factory, protocol, transport, _clock = connect()
        protocol.dataReceived(b"x" * 5000)
        assert transport.disconnecting
        assert factory.counters["oversized_requests"] == 1
        assert "longer than 1024 bytes" in replies(transport)[0]["error"]


class TestUnreadReplies:
    """
    While the transport's write buffer is full, nothing is read or
    served, and a peer that never reads is disconnected.
    """

    def test_pause_stops_replies(self):
        factory, protocol, transport, _clock = connect()
        protocol.pauseProducing()
        protocol.dataReceived(REQUEST * 10)
        assert transport.value() == b""
        assert transport.producerState == "paused"
        assert factory.counters["write_pauses"] == 1

    def test_resume_serves_buffered(self):
        _factory, protocol, transport, _clock = connect()
        protocol.pauseProducing()
        protocol.dataReceived(REQUEST * 3)
        protocol.resumeProducing()
        assert len(replies(transport)) == 3
        assert transport.producerState == "producing"

    def test_stalled_peer_disconnected(self):
        factory, protocol, transport, clock = connect()
        protocol.pauseProducing()
        clock.advance(localapi.STALL_TIMEOUT)
        assert transport.disconnected
        assert factory.counters["stalled_disconnects"] == 1

    def test_reading_peer_not_disconnected(self):
        factory, protocol, transport, clock = connect()
        protocol.pauseProducing()
        clock.advance(localapi.STALL_TIMEOUT - 1)
        protocol.resumeProducing()
        clock.advance(localapi.STALL_TIMEOUT)
        assert not transport.disconnected
        assert factory.counters["stalled_disconnects"] == 0


class TestIdleTimeout:
    """
    A connection that sends nothing for the idle timeout is closed.
    """

    def test_idle_connection_closed(self):
        factory, _protocol, transport, clock = connect()
        clock.advance(localapi.IDLE_TIMEOUT)
        assert transport.disconnecting
        assert factory.counters["idle_timeouts"] == 1
        assert "idle" in replies(transport)[0]["error"]

    def test_request_restarts_timer(self):
        factory, protocol, transport, clock = connect()
        clock.advance(localapi.IDLE_TIMEOUT - 1)
        protocol.dataReceived(REQUEST)
        clock.advance(localapi.IDLE_TIMEOUT - 1)
        assert not transport.disconnecting
        assert factory.counters["idle_timeouts"] == 0

    def test_closed_connection_cancels_timers(self):
        _factory, protocol, _transport, clock = connect()
        protocol.pauseProducing()
        protocol.connectionLost(None)
        assert clock.getDelayedCalls() == []


class TestConnectionCap:
    """
    Connections beyond the cap get one error line and are closed.
    """

    def test_connection_over_cap_rejected(self):
        factory, _protocol, _transport, _clock = connect(max_connections=1)
        extra = factory.buildProtocol(None)
        transport = StringTransport()
        extra.makeConnection(transport)
        assert transport.disconnecting
        assert "too many" in replies(transport)[0]["error"]
        assert factory.counters["rejected_connections"] == 1
        assert len(factory.connections) == 1

    def test_closed_connection_frees_slot(self):
        factory, protocol, _transport, _clock = connect(max_connections=1)
        protocol.connectionLost(None)
        again = factory.buildProtocol(None)
        again.makeConnection(StringTransport())
        assert factory.counters["rejected_connections"] == 0
        assert factory.connections == {again}


class TestRateLimitedLog:
    """
    Repeated limits are logged once per interval, with the count left out.
    """

    def test_repeats_logged_once(self, monkeypatch):
        clock = task.Clock()
        factory = LocalAPIFactory({}, reactor=clock, max_connections=0)
        logged = []
        monkeypatch.setattr(factory, "log", _ListLogger(logged))
        for _attempt in range(100):
            factory.buildProtocol(None)
        assert len(logged) == 1
        clock.advance(localapi.LOG_INTERVAL)
        factory.buildProtocol(None)
        assert len(logged) == 2
        assert logged[1]["suppressed"] == 99
        assert factory.counters["rejected_connections"] == 101


class _ListLogger:
    def __init__(self, events):
        self.events = events

    def warn(self, format, **fields):
        self.events.append(fields)

    info = warn
