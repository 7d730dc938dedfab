# -*- test-case-name: tests.daemons.test_lan -*-
"""
Tests for L{roaming.tap.lan}: the layer 2 update frame, checked with tshark's
802.2 XID decoder, and the IEEE 802.11F ADD-notify, checked against the
byte layout that hostapd's IAPP code sends.
"""

import ipaddress
import shutil
import subprocess

import pytest
from scapy.layers.l2 import LLC, Dot3
from scapy.utils import wrpcap
from twisted.internet.testing import StringTransport

from roaming.errors import DecodeError
from roaming.tap.lan import (
    IAPP_GROUP,
    IAPP_PORT,
    IappProtocol,
    build_add_notify,
    build_layer2_update,
    parse_add_notify,
)

STATION = bytes.fromhex("02aa00000001")

# IEEE 802.11F-2003 ADD-notify as hostapd's iapp.c lays it out: version 0,
# command 0 (ADD-notify), identifier 0x0102, length 16, then address length
# 6, reserved 0, the station's MAC address and sequence number 0x0304.
ADD_NOTIFY = bytes.fromhex("00 00 0102 0010 06 00 02aa00000001 0304")


def test_layer2_update_layout():
    frame = build_layer2_update(STATION)
    assert len(frame) == 60
    decoded = Dot3(frame)
    assert decoded.dst == "ff:ff:ff:ff:ff:ff"
    assert decoded.src == "02:aa:00:00:00:01"
    assert decoded.len == 6
    llc = decoded[LLC]
    assert (llc.dsap, llc.ssap, llc.ctrl) == (0x00, 0x01, 0xAF)
    assert bytes(llc.payload)[:3] == bytes((0x81, 0x01, 0x02))


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_layer2_update_decoded_by_tshark(tmp_path):
    path = tmp_path / "l2update.pcap"
    wrpcap(str(path), [Dot3(build_layer2_update(STATION))])
    fields = ["basicxid.llc.xid.format", "basicxid.llc.xid.types", "basicxid.llc.xid.wsize"]
    command = ["tshark", "-r", str(path), "-T", "fields"]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert output.stdout.split() == ["0x81", "0x01", "1"]


def test_add_notify_matches_layout():
    assert build_add_notify(STATION, identifier=0x0102, sequence=0x0304) == ADD_NOTIFY


def test_add_notify_parsed():
    assert parse_add_notify(ADD_NOTIFY) == STATION


def test_other_command_ignored():
    assert parse_add_notify(b"\x00\x01" + ADD_NOTIFY[2:]) is None


@pytest.mark.parametrize("length", range(len(ADD_NOTIFY)))
def test_truncated_add_notify_rejected(length):
    with pytest.raises(DecodeError):
        parse_add_notify(ADD_NOTIFY[:length])


def test_wrong_version_rejected():
    with pytest.raises(DecodeError, match="version 1"):
        parse_add_notify(b"\x01" + ADD_NOTIFY[1:])


def test_wrong_address_length_rejected():
    with pytest.raises(DecodeError, match="address length 8"):
        parse_add_notify(ADD_NOTIFY[:6] + b"\x08" + ADD_NOTIFY[7:])


class FakeMulticastTransport(StringTransport):
    """
    A datagram transport that records writes and group joins.
    """

    def __init__(self):
        super().__init__()
        self.datagrams = []
        self.groups = []
        self.loopback = None

    def write(self, data, address=None):
        self.datagrams.append((data, address))

    def setLoopbackMode(self, mode):
        self.loopback = mode

    def joinGroup(self, address, interface=""):
        from twisted.internet.defer import succeed

        self.groups.append((address, interface))
        return succeed(None)


def test_protocol_sends_and_hears():
    heard = []
    protocol = IappProtocol(ipaddress.IPv4Address("10.1.0.11"), lambda *args: heard.append(args))
    transport = FakeMulticastTransport()
    protocol.transport = transport
    protocol.startProtocol()
    assert transport.groups == [(IAPP_GROUP, "10.1.0.11")]
    assert transport.loopback is False
    protocol.send_add_notify(STATION)
    ((packet, address),) = transport.datagrams
    assert address == (IAPP_GROUP, IAPP_PORT)
    assert parse_add_notify(packet) == STATION
    protocol.datagramReceived(ADD_NOTIFY, ("10.1.0.12", IAPP_PORT))
    protocol.datagramReceived(ADD_NOTIFY, ("10.1.0.11", IAPP_PORT))
    protocol.datagramReceived(b"\x07", ("10.1.0.12", IAPP_PORT))
    assert heard == [(STATION, ipaddress.IPv4Address("10.1.0.12"))]
    assert protocol.counters == {"sent": 1, "received": 1, "decode_errors": 1, "send_errors": 0}
