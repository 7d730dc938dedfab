# -*- test-case-name: tests.daemons.test_node_actions -*-
"""
Tests for L{roaming.tap.node}: bridge aging on the daemon's clock, and the
control plane actions that remove L3 knowledge and static entries, on an
SC service built from etc/roaming-sc.toml on memory devices.
"""

import ipaddress

from roaming.control.actions import (
    AddL3Entry,
    AddStaticEntry,
    L3Match,
    RemoveL3Entry,
    RemoveStaticEntry,
)
from roaming.tap import sc
from tests.daemons.fakes import DaemonReactor, FakeDevices, example_config

HOST = bytes.fromhex("02bb00000001")
OTHER_SC = ipaddress.IPv4Address("10.2.0.2")
OTHER_SUBNET = ipaddress.IPv4Network("10.2.0.0/24")
AP = ipaddress.IPv4Address("10.1.0.11")


def start_sc(tmp_path, **replacements):
    """
    Start the SC service of etc/roaming-sc.toml on memory devices and a
    memory reactor; return the service, its reactor and its devices.
    """
    options = sc.Options()
    options.parseOptions(["--config", str(example_config(tmp_path, "sc", **replacements))])
    reactor = DaemonReactor()
    devices = FakeDevices()
    service = sc.SCService(
        options["config_object"],
        options["credentials"],
        reactor=reactor,
        devices=devices,
        stop_reactor_on_failure=False,
    )
    service.startService()
    assert service.start_failure is None
    return service, reactor, devices


def lan_frame(source):
    """
    Build a broadcast Ethernet frame from C{source}, padded to 60 bytes.
    """
    return (b"\xff" * 6 + source + b"\x08\x06").ljust(60, b"\x00")


def test_aging_expires_learned_entry(tmp_path):
    service, reactor, devices = start_sc(tmp_path, **{"# aging_time = 300.0": "aging_time = 5.0"})
    bridge = service.datapath.units[0].bridge
    devices.port("eth0").receive(lan_frame(HOST))
    assert bridge.lookup(HOST) is not None

    # The aging timer runs every second on the daemon's reactor, so the
    # entry stays for its 5 s and is gone within one more second.
    reactor.pump([1.0] * 4)
    assert bridge.lookup(HOST) is not None
    reactor.pump([1.0] * 2)
    assert bridge.lookup(HOST) is None
    assert bridge.counters()["fdb"]["expired"] == 1


def test_aging_spares_static_entry(tmp_path):
    service, reactor, _ = start_sc(tmp_path, **{"# aging_time = 300.0": "aging_time = 5.0"})
    assert service.datapath.apply(AddStaticEntry(HOST, AP, 0))

    reactor.pump([1.0] * 10)

    entry = service.datapath.units[0].bridge.lookup(HOST)
    assert entry is not None
    assert entry.static


def test_remove_l3_entry(tmp_path):
    service, _, _ = start_sc(tmp_path)
    bridge = service.datapath.units[0].bridge
    before = list(bridge.l3.entries())
    assert service.datapath.apply(AddL3Entry(OTHER_SUBNET, OTHER_SC, L3Match.POSITIVE))
    assert OTHER_SUBNET in [entry.network for entry in bridge.l3.entries()]

    assert service.datapath.apply(RemoveL3Entry(OTHER_SUBNET, OTHER_SC))

    assert list(bridge.l3.entries()) == before


def test_remove_missing_l3_entry_ignored(tmp_path):
    service, _, _ = start_sc(tmp_path)
    bridge = service.datapath.units[0].bridge
    before = list(bridge.l3.entries())

    assert service.datapath.apply(RemoveL3Entry(OTHER_SUBNET, OTHER_SC))

    assert list(bridge.l3.entries()) == before


def test_remove_static_entry(tmp_path):
    service, _, _ = start_sc(tmp_path)
    bridge = service.datapath.units[0].bridge
    assert service.datapath.apply(AddStaticEntry(HOST, AP, 0))
    assert bridge.lookup(HOST).static

    assert service.datapath.apply(RemoveStaticEntry(HOST, 0))

    assert bridge.lookup(HOST) is None


def test_remove_static_entry_keeps_learned_entry(tmp_path):
    service, _, devices = start_sc(tmp_path)
    bridge = service.datapath.units[0].bridge
    devices.port("eth0").receive(lan_frame(HOST))

    assert service.datapath.apply(RemoveStaticEntry(HOST, 0))

    entry = bridge.lookup(HOST)
    assert entry is not None
    assert not entry.static
    assert entry.port == service.datapath.units[0].ports["lan"]
