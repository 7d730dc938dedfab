# -*- test-case-name: tests.radio.test_hostapd -*-
"""
Tests for L{roaming.radio.hostapd}: event parsing and the attachment state
machine.

The event and reply strings are hostapd's as it prints them: the priority
prefix C{<3>} is MSG_INFO, and C{IFNAME=} prefixes messages relayed by its
global control interface.
"""

import pytest

from roaming.errors import DecodeError
from roaming.radio.hostapd import (
    MAX_MESSAGE_SIZE,
    MAX_PENDING,
    ControlState,
    HostapdControl,
    StationConnected,
    StationDisconnected,
    format_mac,
    parse_event,
    parse_mac,
)

STATION = bytes.fromhex("020000000001")
OTHER = bytes.fromhex("020000000002")


def test_parse_connected_event():
    assert parse_event(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01") == StationConnected(STATION)


def test_parse_disconnected_event():
    assert parse_event(b"<3>AP-STA-DISCONNECTED 02:00:00:00:00:01\n") == StationDisconnected(
        STATION
    )


def test_parse_event_with_extra_fields():
    event = parse_event(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01 p2p_dev_addr=02:00:00:00:00:09")
    assert event == StationConnected(STATION)


def test_parse_event_upper_case_mac():
    assert parse_event(b"<3>AP-STA-CONNECTED 02:00:00:00:00:AB") == StationConnected(
        bytes.fromhex("0200000000ab")
    )


def test_parse_event_from_global_interface():
    event = parse_event(b"<3>IFNAME=wlan0 AP-STA-DISCONNECTED 02:00:00:00:00:01")
    assert event == StationDisconnected(STATION)


def test_parse_other_events_ignored():
    assert parse_event(b"<3>AP-ENABLED") is None
    assert parse_event(b"<3>CTRL-EVENT-EAP-STARTED 02:00:00:00:00:01") is None


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"AP-STA-CONNECTED 02:00:00:00:00:01",
        b"<3>",
        b"<3>AP-STA-CONNECTED",
        b"<3>AP-STA-CONNECTED 02:00:00:00:00",
        b"<3>AP-STA-CONNECTED 02:00:00:00:00:0g",
        b"<3>AP-STA-CONNECTED 02-00-00-00-00-01",
        b"<3>AP-STA-CONNECTED \xff\xfe",
        b"<3>AP-STA-CONNECTED 02:00:00:00:00:01" + b" " * MAX_MESSAGE_SIZE,
    ],
)
def test_parse_event_malformed(message):
    with pytest.raises(DecodeError) as raised:
        parse_event(message)
    assert raised.value.protocol == "hostapd"


def test_parse_event_truncated_at_every_length():
    message = b"<3>AP-STA-CONNECTED 02:00:00:00:00:01"
    for length in range(len(message)):
        try:
            event = parse_event(message[:length])
        except DecodeError:
            continue
        # The only well-formed prefixes name some other event.
        assert event is None, message[:length]


def test_mac_round_trip():
    assert parse_mac("02:00:00:00:00:01") == STATION
    assert format_mac(STATION) == "02:00:00:00:00:01"


def test_format_mac_wrong_length():
    with pytest.raises(ValueError, match="6 bytes"):
        format_mac(b"\x02\x00")


def attached_control(now=0.0):
    """
    Return a control that attached at C{now} and listed no stations.
    """
    control = HostapdControl(ping_interval=5.0, reply_timeout=1.0, retry_interval=1.0)
    control.start(now)
    assert control.data_to_send() == [b"ATTACH"]
    assert control.receive(b"OK\n", now) == []
    assert control.data_to_send() == [b"STA-FIRST"]
    assert control.receive(b"", now) == []
    return control


def test_start_sends_attach():
    control = HostapdControl()
    control.start(0.0)
    assert control.state is ControlState.ATTACHING
    assert control.data_to_send() == [b"ATTACH"]


def test_attach_ok_lists_stations():
    control = attached_control()
    assert control.state is ControlState.ATTACHED
    assert control.stations == set()


def test_attach_fail_retries():
    control = HostapdControl(retry_interval=2.0)
    control.start(0.0)
    control.data_to_send()
    control.receive(b"FAIL\n", 0.5)
    assert control.state is ControlState.DETACHED
    assert control.next_deadline() == 2.5
    control.tick(2.5)
    assert control.state is ControlState.ATTACHING
    assert control.data_to_send() == [b"ATTACH"]


def test_events_update_stations():
    control = attached_control()
    events = control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 1.0)
    assert events == [StationConnected(STATION)]
    assert control.stations == {STATION}
    events = control.receive(b"<3>AP-STA-DISCONNECTED 02:00:00:00:00:01", 2.0)
    assert events == [StationDisconnected(STATION)]
    assert control.stations == set()


def test_reassociation_reported_again():
    control = attached_control()
    control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 1.0)
    events = control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 2.0)
    assert events == [StationConnected(STATION)]


def test_ping_when_due():
    control = attached_control(now=0.0)
    assert control.next_deadline() == 5.0
    control.tick(5.0)
    assert control.data_to_send() == [b"PING"]
    assert control.receive(b"PONG\n", 5.1) == []
    assert control.next_deadline() == 10.0


def test_missing_pong_reattaches():
    control = attached_control(now=0.0)
    control.tick(5.0)
    control.data_to_send()
    assert control.next_deadline() == 6.0
    control.tick(6.0)
    assert control.state is ControlState.DETACHED
    control.tick(7.0)
    assert control.data_to_send() == [b"ATTACH"]


def test_send_failure_retries():
    control = HostapdControl(retry_interval=1.0)
    control.start(0.0)
    control.data_to_send()
    control.send_failed(0.0)
    assert control.state is ControlState.DETACHED
    assert control.next_deadline() == 1.0


def test_reattach_resyncs_stations():
    control = attached_control()
    control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 1.0)

    # hostapd restarted: the station left meanwhile and another arrived.
    control.send_failed(2.0)
    control.tick(3.0)
    assert control.data_to_send() == [b"ATTACH"]
    control.receive(b"OK\n", 3.0)
    assert control.data_to_send() == [b"STA-FIRST"]
    events = control.receive(b"02:00:00:00:00:02\nflags=[AUTH][ASSOC]\n", 3.0)
    assert events == [StationConnected(OTHER)]
    assert control.data_to_send() == [b"STA-NEXT 02:00:00:00:00:02"]
    events = control.receive(b"FAIL\n", 3.0)
    assert events == [StationDisconnected(STATION)]
    assert control.stations == {OTHER}


def test_listing_keeps_known_station_quiet():
    control = attached_control()
    control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 1.0)
    control.send_failed(2.0)
    control.tick(3.0)
    control.data_to_send()
    control.receive(b"OK\n", 3.0)
    control.data_to_send()
    assert control.receive(b"02:00:00:00:00:01\n", 3.0) == []
    assert control.receive(b"", 3.0) == []
    assert control.stations == {STATION}


def test_event_during_listing_not_reported_gone():
    control = attached_control()
    control.send_failed(1.0)
    control.tick(2.0)
    control.data_to_send()
    control.receive(b"OK\n", 2.0)
    control.data_to_send()
    control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 2.0)
    assert control.receive(b"", 2.0) == []
    assert control.stations == {STATION}


def test_listing_loop_ends():
    control = attached_control()
    control.send_failed(1.0)
    control.tick(2.0)
    control.data_to_send()
    control.receive(b"OK\n", 2.0)
    control.data_to_send()
    control.receive(b"02:00:00:00:00:01\n", 2.0)
    control.data_to_send()
    # A server that replies to STA-NEXT with the same station again.
    assert control.receive(b"02:00:00:00:00:01\n", 2.0) == []
    assert control.data_to_send() == []


def test_garbled_listing_reply_rejected():
    control = attached_control()
    control.send_failed(1.0)
    control.tick(2.0)
    control.data_to_send()
    control.receive(b"OK\n", 2.0)
    control.data_to_send()
    with pytest.raises(DecodeError):
        control.receive(b"UNKNOWN COMMAND\n", 2.0)
    assert control.data_to_send() == []


def test_reply_without_command_rejected():
    control = attached_control()
    with pytest.raises(DecodeError, match="reply without a command"):
        control.receive(b"PONG\n", 1.0)


def test_station_table_bound():
    control = HostapdControl(max_stations=1)
    control.start(0.0)
    control.data_to_send()
    control.receive(b"OK\n", 0.0)
    control.receive(b"", 0.0)
    assert control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01", 1.0)
    assert control.receive(b"<3>AP-STA-CONNECTED 02:00:00:00:00:02", 1.0) == []
    assert control.stations == {STATION}


def test_pending_bound_detaches():
    # The reply timeout is far away, so only the pending-command bound can
    # detach the client.
    control = HostapdControl(ping_interval=1.0, reply_timeout=1000.0, retry_interval=1.0)
    control.start(0.0)
    control.data_to_send()
    control.receive(b"OK\n", 0.0)
    control.data_to_send()
    control.receive(b"", 0.0)
    for second in range(1, MAX_PENDING + 1):
        control.tick(float(second))
        assert control.state is ControlState.ATTACHED, second
    assert control.data_to_send() == [b"PING"] * MAX_PENDING

    control.tick(float(MAX_PENDING + 1))

    assert control.state is ControlState.DETACHED
    assert control.data_to_send() == []
    # Losing hostapd clears the pending commands and schedules an attach.
    assert control.next_deadline() == MAX_PENDING + 1 + 1.0


def test_detach_sends_detach():
    control = attached_control()
    control.detach()
    assert control.data_to_send() == [b"DETACH"]
    assert control.next_deadline() is None
