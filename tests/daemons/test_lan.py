# -*- test-case-name: tests.daemons.test_lan -*-
"""
Tests for L{roaming.tap.lan}: the layer 2 update frame, checked with scapy
and with tshark's 802.2 XID decoder. The IEEE 802.11F ADD-notify is tested
with its own modules, in tests.control.test_core_iapp80211f and
tests.control.test_wire_iapp.
"""

import shutil
import subprocess

import pytest
from scapy.layers.l2 import LLC, Dot3
from scapy.utils import wrpcap

from roaming.tap.lan import build_layer2_update

STATION = bytes.fromhex("02aa00000001")


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
