"""
Tests for L{roaming.ports.dispatch}: frames from memory ports go through a
bridge and out of the ports it returns.
"""

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.pair.testing import MemoryIOSystem, Tunnel
from twisted.pair.tuntap import _TUN_KO_PATH

from roaming.bridge.core import Bridge
from roaming.ports.dispatch import BridgeDispatcher
from roaming.ports.gre import RawGrePort
from roaming.ports.tap import TapPort
from roaming.ports.tunnels import GreTunnel, GreTunnelTable

from .fakes import LearningBridge, MemorySocketSystem
from .frames import MAC_A, MAC_B, arp_request, udp_frame


class _Setup:
    def __init__(self, bridge) -> None:
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.bridge = bridge
        self.dispatcher = BridgeDispatcher(bridge, clock=self.clock)
        self.io = MemoryIOSystem()
        self.io.registerSpecialDevice(_TUN_KO_PATH, Tunnel)
        self.sockets = MemorySocketSystem()

    def tap(self, name: bytes):
        port = TapPort(name, reactor=MemoryReactorClock(), system=self.io)
        number = self.dispatcher.attach(port)
        return port, number, self.io.getTunnel(port)

    def gre(self):
        table = GreTunnelTable("192.0.2.1")
        table.add_tunnel(GreTunnel(agg_id=11, remote="192.0.2.2", key=1))
        table.add_tunnel(GreTunnel(agg_id=12, remote="192.0.2.3", key=2))
        port = RawGrePort("192.0.2.1", table, reactor=MemoryReactorClock(), system=self.sockets)
        number = self.dispatcher.attach(port)
        return port, number, self.sockets.sockets[-1]


def test_flood_then_unicast():
    """
    A broadcast from one TAP port floods to the other; the reply to the
    learned address goes back only to the first port.
    """
    setup = _Setup(LearningBridge())
    first, _, first_device = setup.tap(b"rtap0")
    second, _, second_device = setup.tap(b"rtap1")
    _, _, third_device = setup.tap(b"rtap2")

    request = arp_request()
    first_device.readBuffer.append(request)
    first.doRead()
    assert list(second_device.writeBuffer) == [request]
    assert list(third_device.writeBuffer) == [request]

    reply = udp_frame(src=MAC_B, dst=MAC_A)
    second_device.readBuffer.append(reply)
    second.doRead()
    assert list(first_device.writeBuffer) == [reply]
    assert list(third_device.writeBuffer) == [request]


def test_time_passed_to_bridge():
    """
    The bridge gets the clock's time with each frame and the ingress port's
    number.
    """
    bridge = LearningBridge()
    setup = _Setup(bridge)
    port, number, device = setup.tap(b"rtap0")
    device.readBuffer.append(udp_frame())
    port.doRead()
    assert [(p, agg, now) for p, agg, _, now in bridge.processed] == [(number, None, 1000.0)]


def test_gre_members_registered_and_flooded():
    """
    Attaching a GRE port makes it an aggregation port with its tunnels as
    members; a flood from a TAP port is sent into every tunnel.
    """
    bridge = LearningBridge()
    setup = _Setup(bridge)
    tap, _, device = setup.tap(b"rtap0")
    _, gre_number, sock = setup.gre()
    assert bridge.ports[gre_number - 1] == ("gre-ip:192.0.2.1", True, False)
    assert bridge.members[gre_number] == [11, 12]

    device.readBuffer.append(arp_request())
    tap.doRead()
    assert [address for _, address, _ in sock.sent] == [("192.0.2.2", 0), ("192.0.2.3", 0)]


def test_port_options_passed():
    """
    Options of C{attach} reach C{Bridge.add_port}.
    """
    bridge = LearningBridge()
    setup = _Setup(bridge)
    port = TapPort(b"rtap0", reactor=MemoryReactorClock(), system=setup.io)
    setup.dispatcher.attach(port, access_controlled=True)
    assert bridge.ports == [("rtap0", False, True)]


def test_detached_egress_counted():
    """
    A frame for a port that was detached is counted and dropped.
    """
    setup = _Setup(LearningBridge())
    first, _, first_device = setup.tap(b"rtap0")
    _, second_number, _ = setup.tap(b"rtap1")
    setup.dispatcher.detach(second_number)
    assert second_number not in setup.dispatcher.ports()
    first_device.readBuffer.append(arp_request())
    first.doRead()
    assert setup.dispatcher.unknown_egress == 1


def test_bridge_exception_keeps_port_reading():
    """
    An exception from the bridge is counted; the port reads on.
    """

    class FailingBridge(LearningBridge):
        def process(self, port, agg_id, frame, now):
            if frame[-1:] == b"!":
                raise ValueError("broken frame")
            return super().process(port, agg_id, frame, now)

    setup = _Setup(FailingBridge())
    first, _, first_device = setup.tap(b"rtap0")
    _, _, second_device = setup.tap(b"rtap1")
    good = arp_request()
    first_device.readBuffer.append(udp_frame(b"bad!"))
    first_device.readBuffer.append(good)
    first.doRead()
    assert setup.dispatcher.bridge_errors == 1
    assert list(second_device.writeBuffer) == [good]


def test_with_roaming_bridge():
    """
    The dispatcher drives the project's bridge core: a flood reaches the
    other port and the learned reply goes back.
    """
    setup = _Setup(Bridge())
    first, _, first_device = setup.tap(b"rtap0")
    second, _, second_device = setup.tap(b"rtap1")
    request = arp_request()
    first_device.readBuffer.append(request)
    first.doRead()
    assert list(second_device.writeBuffer) == [request]
    reply = udp_frame(src=MAC_B, dst=MAC_A)
    second_device.readBuffer.append(reply)
    second.doRead()
    assert list(first_device.writeBuffer) == [reply]


def test_send_exception_keeps_port_reading():
    """
    An exception from one egress port's send is counted; the other egress
    ports still get the frame and the ingress port reads on.
    """
    setup = _Setup(LearningBridge())
    first, _, first_device = setup.tap(b"rtap0")
    second, _, _ = setup.tap(b"rtap1")
    _, _, third_device = setup.tap(b"rtap2")

    def broken_send(frame, agg_id=None):
        raise RuntimeError("socket gone")

    second.send_frame = broken_send
    frames = [arp_request(), udp_frame(b"next")]
    first_device.readBuffer.extend(frames)
    first.doRead()
    assert setup.dispatcher.send_errors == 2
    assert list(third_device.writeBuffer) == frames


def test_failed_start_leaves_bridge():
    """
    A port that fails to start is removed from the bridge again, and the
    error reaches the caller.
    """
    bridge = LearningBridge()
    setup = _Setup(bridge)
    _, first_number, _ = setup.tap(b"rtap0")
    port = TapPort(b"rtap1", reactor=MemoryReactorClock(), system=setup.io)

    def failing_start(sink):
        raise OSError("device missing")

    port.start_port = failing_start
    with pytest.raises(OSError, match="device missing"):
        setup.dispatcher.attach(port)
    assert bridge.removed == [2]
    assert list(setup.dispatcher.ports()) == [first_number]
