# -*- test-case-name: tests.control.test_wire_iapp -*-
"""
IEEE 802.11F ADD-notify on an AP's LAN: UDP port 3517, group 224.0.1.178.

An AP sends an ADD-notify when a station associates with it. Every other AP
on the LAN that receives it and still lists the station removes the
station. The packet format is in L{roaming.control.iapp80211f}, and this
module moves the packets.

L{IappMulticastProtocol} joins the group on one interface
(C{IP_ADD_MEMBERSHIP} with the interface's address), sends through that
interface (C{IP_MULTICAST_IF}) with a TTL of 1 so the packets stay on the
LAN, and can bind its socket to the interface (C{SO_BINDTODEVICE}, root
only) so that several APs on one host each hear only their own LAN.
L{listen_iapp} opens the socket.

An AP daemon connects it to its role object and control node like this::

    iapp = IappMulticastProtocol(
        "192.0.2.10",
        on_add_notify=lambda mac, sender: node.run(
            lambda now: access_point.iapp_add_notify_received(mac, sender, now)
        ),
    )
    listen_iapp(reactor, iapp, device="br0")

and passes each L{SendIappAddNotify} action to L{IappMulticastProtocol.send}.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from ipaddress import IPv4Address

import attrs
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from roaming.control.actions import Action, SendIappAddNotify
from roaming.control.iapp80211f import (
    IAPP_MULTICAST_GROUP,
    IAPP_PORT,
    build_add_notify,
    parse_add_notify,
)
from roaming.errors import DecodeError

__all__ = ["IappCounters", "IappMulticastProtocol", "listen_iapp"]

# IEEE 802.11F ADD-notify packets are meant for the local LAN only.
_MULTICAST_TTL = 1

# The first decode errors are all logged, then one in this many.
_LOG_FIRST = 10
_LOG_EVERY = 1000


@attrs.define
class IappCounters:
    """
    Packets sent, received and dropped by an L{IappMulticastProtocol}.
    """

    sent: int = 0
    received: int = 0
    #: Our own packets looped back, ignored.
    own: int = 0
    #: Malformed packets, dropped.
    decode_errors: int = 0
    send_errors: int = 0


class IappMulticastProtocol(DatagramProtocol):
    """
    Send and receive ADD-notify packets on one LAN interface.

    @param interface_address: the IPv4 address of the LAN interface; the
        group is joined and packets are sent there, and packets from it are
        our own.
    @param on_add_notify: called with the station's MAC address and the
        sender's address for each valid ADD-notify from another AP.
    @param loopback: whether the kernel also delivers our packets to sockets
        on this host (C{IP_MULTICAST_LOOP}); needed only when several APs
        share one host and one interface.
    """

    log = Logger(namespace="roaming.control.iapp_udp")

    def __init__(
        self,
        interface_address: str,
        *,
        on_add_notify: Callable[[bytes, IPv4Address], None],
        loopback: bool = False,
    ) -> None:
        self.interface_address = IPv4Address(interface_address)
        self.on_add_notify = on_add_notify
        self.loopback = loopback
        self.counters = IappCounters()
        self._identifier = 0
        self.joined = None

    def startProtocol(self) -> None:
        group, interface = str(IAPP_MULTICAST_GROUP), str(self.interface_address)
        self.transport.setOutgoingInterface(interface)
        self.transport.setTTL(_MULTICAST_TTL)
        self.transport.setLoopbackMode(self.loopback)
        self.joined = self.transport.joinGroup(group, interface)
        self.joined.addCallbacks(self._joined, self._join_failed)

    def _joined(self, result: object) -> None:
        self.log.info(
            "Joined IAPP group {group} on {interface}",
            group=str(IAPP_MULTICAST_GROUP),
            interface=str(self.interface_address),
        )

    def _join_failed(self, failure) -> None:
        self.log.failure(
            "Joining IAPP group {group} on {interface} failed",
            failure,
            group=str(IAPP_MULTICAST_GROUP),
            interface=str(self.interface_address),
        )

    def datagramReceived(self, data: bytes, address: tuple[str, int]) -> None:
        sender = IPv4Address(address[0])
        if sender == self.interface_address:
            self.counters.own += 1
            return
        try:
            notice = parse_add_notify(data)
        except DecodeError as error:
            self.counters.decode_errors += 1
            count = self.counters.decode_errors
            if count <= _LOG_FIRST or count % _LOG_EVERY == 0:
                self.log.warn(
                    "Dropped IAPP packet from {sender}: {error} ({count} dropped so far)",
                    sender=str(sender),
                    error=error,
                    count=count,
                )
            return
        self.counters.received += 1
        self.on_add_notify(notice.mac, sender)

    def send(self, mac: bytes, sequence: int = 0) -> None:
        """
        Send an ADD-notify for station C{mac} to the IAPP group.

        @param sequence: the sequence number of the station's association
            request frame, if known.
        """
        self._identifier = (self._identifier + 1) & 0xFFFF
        packet = build_add_notify(mac, sequence, self._identifier)
        try:
            self.transport.write(packet, (str(IAPP_MULTICAST_GROUP), IAPP_PORT))
        except OSError as error:
            self.counters.send_errors += 1
            self.log.warn(
                "Sending IAPP ADD-notify for {mac} failed: {error}",
                mac=mac.hex(":"),
                error=error,
            )
            return
        self.counters.sent += 1

    def handle_action(self, action: Action) -> bool:
        """
        Send the packet for a L{SendIappAddNotify} action.

        @return: whether C{action} was one this protocol carries out.
        """
        if not isinstance(action, SendIappAddNotify):
            return False
        self.send(action.mac)
        return True


def listen_iapp(
    reactor,
    protocol: IappMulticastProtocol,
    *,
    device: str | None = None,
    port: int = IAPP_PORT,
):
    """
    Open the IAPP socket for C{protocol}: UDP C{port} bound to the group
    address, shared with other listeners on this host (C{SO_REUSEADDR}).

    @param device: the interface name to bind the socket to
        (C{SO_BINDTODEVICE}, needs root), so that it hears only that LAN.
    @return: the listening port.
    """
    listening = reactor.listenMulticast(
        port, protocol, interface=str(IAPP_MULTICAST_GROUP), listenMultiple=True
    )
    if device is not None:
        listening.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode("ascii") + b"\0"
        )
    return listening
