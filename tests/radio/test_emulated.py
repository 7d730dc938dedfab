# -*- test-case-name: tests.radio.test_emulated -*-
"""
Tests for L{roaming.radio.emulated.EmulatedHostapd}, alone and paired in
memory with the client state machine it serves.
"""

import pytest

from roaming.radio.emulated import EmulatedHostapd
from roaming.radio.hostapd import (
    HostapdControl,
    StationConnected,
    StationDisconnected,
    parse_event,
)

STATION = bytes.fromhex("020000000001")
OTHER = bytes.fromhex("020000000002")


def test_ping_pong():
    server = EmulatedHostapd()
    assert server.handle_request("c", b"PING") == b"PONG\n"


def test_unknown_command():
    server = EmulatedHostapd()
    assert server.handle_request("c", b"STATUS") == b"UNKNOWN COMMAND\n"
    assert server.handle_request("c", b"\xff") == b"UNKNOWN COMMAND\n"


def test_events_reach_attached_clients_only():
    server = EmulatedHostapd()
    assert server.handle_request("a", b"ATTACH") == b"OK\n"
    datagrams = server.connect_station(STATION)
    assert datagrams == [("a", b"<3>AP-STA-CONNECTED 02:00:00:00:00:01")]
    assert parse_event(datagrams[0][1]) == StationConnected(STATION)


def test_detach_stops_events():
    server = EmulatedHostapd()
    server.handle_request("a", b"ATTACH")
    assert server.handle_request("a", b"DETACH") == b"OK\n"
    assert server.handle_request("a", b"DETACH") == b"FAIL\n"
    assert server.connect_station(STATION) == []


def test_disconnect_unknown_station_silent():
    server = EmulatedHostapd()
    server.handle_request("a", b"ATTACH")
    assert server.disconnect_station(STATION) == []


def test_station_listing():
    server = EmulatedHostapd()
    server.connect_station(STATION)
    server.connect_station(OTHER)
    first = server.handle_request("a", b"STA-FIRST")
    assert first.split(b"\n")[0] == b"02:00:00:00:00:01"
    second = server.handle_request("a", b"STA-NEXT 02:00:00:00:00:01")
    assert second.split(b"\n")[0] == b"02:00:00:00:00:02"
    assert server.handle_request("a", b"STA-NEXT 02:00:00:00:00:02") == b""
    assert server.handle_request("a", b"STA 02:00:00:00:00:02").startswith(b"02:00:00:00:00:02")
    assert server.handle_request("a", b"STA 02:00:00:00:00:09") == b""


def test_client_limit():
    server = EmulatedHostapd(max_clients=1)
    assert server.handle_request("a", b"ATTACH") == b"OK\n"
    assert server.handle_request("b", b"ATTACH") == b"FAIL\n"


def test_station_limit():
    server = EmulatedHostapd(max_stations=1)
    server.connect_station(STATION)
    with pytest.raises(ValueError, match="station table is full"):
        server.connect_station(OTHER)


class Pair:
    """
    A client state machine wired to an emulated server in memory.
    """

    def __init__(self):
        self.server = EmulatedHostapd()
        self.client = HostapdControl()
        self.events = []

    def pump(self, now):
        for command in self.client.data_to_send():
            reply = self.server.handle_request("client", command)
            self.events += self.client.receive(reply, now)

    def deliver(self, datagrams, now):
        for _, datagram in datagrams:
            self.events += self.client.receive(datagram, now)
        self.pump(now)


def test_pair_attach_and_events():
    pair = Pair()
    pair.server.connect_station(OTHER)
    pair.client.start(0.0)
    for _ in range(4):
        pair.pump(0.0)
    assert pair.events == [StationConnected(OTHER)]

    pair.deliver(pair.server.connect_station(STATION), 1.0)
    pair.deliver(pair.server.disconnect_station(OTHER), 2.0)
    assert pair.events[1:] == [StationConnected(STATION), StationDisconnected(OTHER)]
    assert pair.client.stations == {STATION}


def test_pair_server_restart():
    pair = Pair()
    pair.client.start(0.0)
    for _ in range(3):
        pair.pump(0.0)
    pair.deliver(pair.server.connect_station(STATION), 1.0)

    # The server restarts with a different station and drops its clients.
    pair.server = EmulatedHostapd()
    pair.server.connect_station(OTHER)
    pair.client.tick(5.0)
    pair.client.data_to_send()  # the PING is lost with the old server
    pair.client.tick(6.0)
    pair.client.tick(7.0)
    for _ in range(4):
        pair.pump(7.0)

    assert pair.events[-2:] == [StationConnected(OTHER), StationDisconnected(STATION)]
    assert pair.client.stations == {OTHER}
    assert list(pair.server.clients) == ["client"]
