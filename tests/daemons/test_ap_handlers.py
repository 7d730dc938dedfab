# -*- test-case-name: tests.daemons.test_ap_handlers -*-
"""
Tests for the event handlers of L{roaming.tap.ap.APService}: radio
disassociations, addresses the bridge learns, ADD-notify packets heard from
other APs, and the LAN actions of the control plane.

Each test drives a service built from etc/roaming-ap.toml on memory devices
through its radio listener, its bridge ports or its IAPP protocol.
"""

import ipaddress

from roaming.control.actions import RemoveStation, SendIappAddNotify
from roaming.tap import ap
from tests.daemons.fakes import DaemonReactor, FakeDevices, example_config

# A station of the AP's own subnet 10.1.0.0/24 and a visitor from 10.2.0.0/24.
LOCAL = bytes.fromhex("02aa00000002")
ROAMER = bytes.fromhex("02aa00000001")
OTHER_AP = "10.1.0.12"


def arp_request(source, sender_ip, target_ip):
    """
    Build a broadcast ARP request (RFC 826) from C{source} claiming
    C{sender_ip}, padded to the 60-byte Ethernet minimum.
    """
    return (
        b"\xff" * 6
        + source
        + bytes.fromhex("08060001080006040001")
        + source
        + ipaddress.IPv4Address(sender_ip).packed
        + bytes(6)
        + ipaddress.IPv4Address(target_ip).packed
    ).ljust(60, b"\x00")


def add_notify(mac):
    """
    Build an ADD-notify for C{mac} laid out as IEEE 802.11F-2003 and
    hostapd's src/ap/iapp.c define it: version 0, command 0, identifier 1,
    length 16, address length 6, reserved 0, the MAC address, sequence 0.
    """
    return bytes.fromhex("00 00 0001 0010 06 00") + mac + bytes.fromhex("0000")


class RecordingMulticastTransport:
    """
    The multicast port of the IAPP protocol: records what it writes.
    """

    def __init__(self):
        self.written = []

    def write(self, packet, address):
        self.written.append((packet, address))


def start_ap(tmp_path):
    """
    Start the AP service of etc/roaming-ap.toml on memory devices; return
    the service, its devices and its only radio's listener.
    """
    options = ap.Options()
    options.parseOptions(["--config", str(example_config(tmp_path, "ap"))])
    devices = FakeDevices()
    service = ap.APService(
        options["config_object"],
        options["credentials"],
        reactor=DaemonReactor(),
        devices=devices,
        stop_reactor_on_failure=False,
    )
    service.startService()
    assert service.start_failure is None
    (radio,) = devices.radios
    return service, devices, radio.listener


def test_station_disconnected_forgets_station(tmp_path):
    service, _, listener = start_ap(tmp_path)
    listener.station_connected(ROAMER)
    assert ROAMER in service.access_point.stations
    assert ROAMER in service.datapath.station_ports

    listener.station_disconnected(ROAMER)

    assert ROAMER not in service.access_point.stations
    assert ROAMER not in service.datapath.station_ports


def test_station_disconnected_unknown_station(tmp_path):
    service, _, listener = start_ap(tmp_path)

    listener.station_disconnected(ROAMER)

    assert service.access_point.stations == {}
    assert ROAMER not in service.datapath.station_ports


def test_learned_address_reaches_control_plane(tmp_path):
    service, devices, listener = start_ap(tmp_path)
    listener.station_connected(LOCAL)
    assert service.access_point.stations[LOCAL].ip is None

    devices.port("wlan0").receive(arp_request(LOCAL, "10.1.0.60", "10.1.0.1"))

    station = service.access_point.stations[LOCAL]
    assert station.ip == ipaddress.IPv4Address("10.1.0.60")
    assert station.ip_confirmed
    assert LOCAL not in service.access_point.visitors


def test_roamer_address_reaches_control_plane(tmp_path):
    service, devices, listener = start_ap(tmp_path)
    listener.station_connected(ROAMER)

    devices.port("wlan0").receive(arp_request(ROAMER, "10.2.0.50", "10.2.0.1"))

    station = service.access_point.stations[ROAMER]
    assert station.ip == ipaddress.IPv4Address("10.2.0.50")
    assert ROAMER in service.access_point.visitors


def test_address_of_unassociated_station_ignored(tmp_path):
    service, devices, _ = start_ap(tmp_path)

    devices.port("wlan0").receive(arp_request(LOCAL, "10.1.0.60", "10.1.0.1"))

    # The bridge learned the station, but the control plane has no
    # association to attach the address to.
    entry = service.datapath.units[0].bridge.lookup(LOCAL.hex(":"))
    assert entry is not None
    assert service.access_point.stations == {}
    assert service.access_point.db.get(LOCAL) is None


def test_association_sends_add_notify(tmp_path):
    service, _, listener = start_ap(tmp_path)
    transport = RecordingMulticastTransport()
    service.iapp.transport = transport

    listener.station_connected(ROAMER)

    assert transport.written == [(add_notify(ROAMER), ("224.0.1.178", 3517))]
    assert service.iapp.counters.sent == 1


def test_add_notify_action_without_socket(tmp_path):
    service, _, _ = start_ap(tmp_path)
    service.iapp.transport = None

    service.control.run([SendIappAddNotify(ROAMER)])

    assert service.iapp.counters.sent == 0
    assert service.iapp.counters.send_errors == 0


def test_add_notify_from_other_ap_removes_station(tmp_path):
    service, _, listener = start_ap(tmp_path)
    listener.station_connected(ROAMER)

    service.iapp.datagramReceived(add_notify(ROAMER), (OTHER_AP, 3517))

    assert service.iapp.counters.received == 1
    assert ROAMER not in service.access_point.stations
    assert ROAMER not in service.datapath.station_ports


def test_own_add_notify_keeps_station(tmp_path):
    service, _, listener = start_ap(tmp_path)
    listener.station_connected(ROAMER)

    service.iapp.datagramReceived(add_notify(ROAMER), ("10.1.0.11", 3517))

    assert service.iapp.counters.own == 1
    assert ROAMER in service.access_point.stations
    assert ROAMER in service.datapath.station_ports


def test_remove_station_action_drops_port(tmp_path):
    service, _, listener = start_ap(tmp_path)
    listener.station_connected(ROAMER)

    service.control.run([RemoveStation(ROAMER)])

    assert ROAMER not in service.datapath.station_ports
    # The radio has no call to disassociate, so the association stays
    # until the radio reports it gone.
    assert ROAMER in service.access_point.stations
