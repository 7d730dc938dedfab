"""
Tests for L{roaming.ports.forward}: option parsing and port construction.
"""

import argparse

import pytest
from twisted.internet.testing import MemoryReactorClock

from roaming.bridge.core import Bridge
from roaming.ports.dispatch import BridgeDispatcher
from roaming.ports.forward import _bridge, _counters, _gre_port, build_parser, parse_tunnel
from roaming.ports.gre import RawGrePort, UdpGrePort
from roaming.ports.tunnels import GreTunnel, GreTunnelTable
from roaming.tunnel.endpoint import COUNTER_NAMES, GreEndpoint, Transport

from .fakes import MemorySocketSystem


def test_parse_tunnel():
    """
    AGG_ID:REMOTE:KEY takes decimal or hexadecimal numbers.
    """
    assert parse_tunnel("1:192.0.2.2:0x10") == GreTunnel(1, "192.0.2.2", 16)
    assert parse_tunnel("0x20:192.0.2.3:7") == GreTunnel(32, "192.0.2.3", 7)


@pytest.mark.parametrize("text", ["1:192.0.2.2", "x:192.0.2.2:1", "1:192.0.2.2:1:2"])
def test_parse_tunnel_invalid(text):
    """
    Text without three numeric fields is rejected with the expected form.
    """
    with pytest.raises(argparse.ArgumentTypeError, match="invalid tunnel"):
        parse_tunnel(text)


def test_engine_port_from_options():
    """
    By default the GRE port runs on the tunnel engine with the path MTU,
    sequence numbers and keepalive period from the options.
    """
    arguments = ["--gre-ip", "192.0.2.1", "--tunnel", "1:192.0.2.2:0x10"]
    options = build_parser().parse_args([*arguments, "--path-mtu", "1600", "--keepalive", "5"])
    port = _gre_port(options)
    assert isinstance(port, RawGrePort)
    assert isinstance(port.endpoint, GreEndpoint)
    assert port.endpoint.transport is Transport.RAW_IPV4
    [tunnel] = port.endpoint.tunnels()
    assert (tunnel.agg_id, tunnel.remote, tunnel.key) == (1, "192.0.2.2", 0x10)
    assert tunnel.path_mtu == 1600
    assert tunnel.sequence
    assert tunnel.keepalive is not None


def test_table_port_over_udp():
    """
    C{--endpoint table} with C{--gre-udp} builds a UDP port on the static
    table.
    """
    options = build_parser().parse_args(
        ["--gre-udp", "192.0.2.1", "--tunnel", "3:192.0.2.9:5", "--endpoint", "table"]
    )
    port = _gre_port(options)
    assert isinstance(port, UdpGrePort)
    assert isinstance(port.endpoint, GreTunnelTable)
    assert port.member_ids() == [3]


def test_tunnel_needs_gre_port():
    """
    Tunnels without a GRE port are rejected with the option to add.
    """
    options = build_parser().parse_args(["--tap", "tap0", "--tunnel", "1:192.0.2.2:1"])
    with pytest.raises(SystemExit, match="--gre-ip or --gre-udp"):
        _gre_port(options)


def test_max_frame_reaches_engine():
    """
    The largest frame defaults to a 1500-byte MTU with two VLAN tags and
    is passed to the tunnel engine.
    """
    arguments = ["--gre-ip", "192.0.2.1", "--tunnel", "1:192.0.2.2:0x10"]
    assert _gre_port(build_parser().parse_args(arguments)).endpoint.max_frame_size == 1522
    options = build_parser().parse_args([*arguments, "--max-frame", "9018"])
    assert _gre_port(options).endpoint.max_frame_size == 9018


def test_counters_include_zero_engine_counters():
    """
    The counters written on exit list every engine counter, zero or not.
    """
    clock = MemoryReactorClock()
    engine = GreEndpoint("127.0.0.1")
    engine.add_tunnel(1, "127.0.0.2", 1)
    engine.counters["oversized-frame"] = 2
    port = RawGrePort("127.0.0.1", engine, reactor=clock, system=MemorySocketSystem())
    dispatcher = BridgeDispatcher(Bridge("forward"), clock=clock)
    dispatcher.attach(port)

    [entry] = _counters(dispatcher)["ports"].values()

    engine_counters = {name: entry[f"tunnel.{name}"] for name in COUNTER_NAMES}
    assert engine_counters["oversized-frame"] == 2
    assert sum(engine_counters.values()) == 2


def test_bridge_drops_frames_over_max_frame():
    """
    The forwarder's bridge drops and counts frames longer than the largest
    frame, which a 1500-byte device could not send whole.
    """
    bridge = _bridge(build_parser().parse_args(["--tap", "tap0"]))
    ingress = bridge.add_port("a")
    bridge.add_port("b")
    frame = bytes.fromhex("020000000002 020000000001 88b5")

    assert bridge.process(ingress, None, frame + bytes(1522 - 14), 0.0)
    assert not bridge.process(ingress, None, frame + bytes(1523 - 14), 0.0)
    assert bridge.counters()["drops"]["oversized"] == 1
