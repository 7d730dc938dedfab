# -*- test-case-name: tests.daemons.test_lan -*-
"""
Frames an AP sends and receives on its LAN besides bridged frames: the layer 2
update frame and the IEEE 802.11F (IAPP) ADD-notify.

The layer 2 update frame is an IEEE 802.2 LLC XID frame sent to the
broadcast address with the station's MAC address as its source, so every
switch learns that the station is now reached through this AP (IEEE
802.11F-2003 section 3.1; hostapd sends the same frame as
C{hostapd_send_l2_update}).

The ADD-notify is an IAPP packet sent over UDP to port 3517 of the group
224.0.1.178 when a station associates (IEEE 802.11F-2003 section 4.1). An
AP that hears one for a station associated with it drops the station.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from roaming.errors import DecodeError

__all__ = [
    "IAPP_GROUP",
    "IAPP_PORT",
    "IappProtocol",
    "build_add_notify",
    "build_layer2_update",
    "parse_add_notify",
]

IAPP_PORT = 3517
IAPP_GROUP = "224.0.1.178"

_BROADCAST = b"\xff" * 6
# Ethernet header with an 802.3 length field, then LLC: DSAP 0x00 (null
# SAP), SSAP 0x01 (null SAP, response bit set) and control 0xAF (XID with
# the P/F bit), then the 3-byte XID information field: format 0x81, LLC
# type 1, receive window 1 (shifted left by one as IEEE 802.2 encodes it).
_L2_UPDATE = struct.Struct("!6s6sHBBB3s")
_XID_INFO = bytes((0x81, 0x01, 0x02))
_LLC_LENGTH = 6
# IEEE 802.3 minimum frame without the FCS.
_MINIMUM_FRAME = 60

# IAPP header: version, command, identifier, length (IEEE 802.11F-2003
# section 4.1.1), then the ADD-notify body: address length, reserved,
# MAC address, sequence number (section 4.1.2).
_IAPP_HEADER = struct.Struct("!BBHH")
_ADD_NOTIFY = struct.Struct("!BB6sH")
_IAPP_VERSION = 0
_ADD_NOTIFY_COMMAND = 0


def build_layer2_update(mac: bytes) -> bytes:
    """
    Build the layer 2 update frame for station C{mac}, padded to 60 bytes.
    """
    frame = _L2_UPDATE.pack(_BROADCAST, mac, _LLC_LENGTH, 0x00, 0x01, 0xAF, _XID_INFO)
    return frame.ljust(_MINIMUM_FRAME, b"\x00")


def build_add_notify(mac: bytes, identifier: int, sequence: int = 0) -> bytes:
    """
    Build an IAPP ADD-notify packet (the UDP payload) for station C{mac}.
    """
    length = _IAPP_HEADER.size + _ADD_NOTIFY.size
    header = _IAPP_HEADER.pack(_IAPP_VERSION, _ADD_NOTIFY_COMMAND, identifier & 0xFFFF, length)
    return header + _ADD_NOTIFY.pack(6, 0, mac, sequence & 0xFFFF)


def parse_add_notify(packet: bytes) -> bytes | None:
    """
    Return the station MAC address of an ADD-notify, or C{None} for an IAPP
    packet of another command.

    @raise DecodeError: the packet is truncated, of another version, or
        carries an address that is not 6 bytes.
    """
    if len(packet) < _IAPP_HEADER.size:
        raise DecodeError("iapp", f"packet of {len(packet)} bytes is shorter than its header")
    version, command, _, length = _IAPP_HEADER.unpack_from(packet)
    if version != _IAPP_VERSION:
        raise DecodeError("iapp", f"version {version} is not 0")
    if command != _ADD_NOTIFY_COMMAND:
        return None
    if length > len(packet) or len(packet) < _IAPP_HEADER.size + _ADD_NOTIFY.size:
        raise DecodeError("iapp", f"ADD-notify of {len(packet)} bytes is truncated")
    address_length, _, mac, _ = _ADD_NOTIFY.unpack_from(packet, _IAPP_HEADER.size)
    if address_length != 6:
        raise DecodeError("iapp", f"address length {address_length} is not 6")
    return mac


class IappProtocol(DatagramProtocol):
    """
    Sends ADD-notify packets to the IAPP group and reports the ones heard
    from other APs.

    @param on_add_notify: called with C{(mac, sender address)}.
    """

    log = Logger()

    def __init__(
        self,
        address: ipaddress.IPv4Address,
        on_add_notify: Callable[[bytes, ipaddress.IPv4Address], None],
    ) -> None:
        self.address = address
        self._on_add_notify = on_add_notify
        self._identifier = 0
        self.counters = {"sent": 0, "received": 0, "decode_errors": 0, "send_errors": 0}

    def startProtocol(self) -> None:
        """
        Join the IAPP group on the node's own address.
        """
        self.transport.setLoopbackMode(False)
        self.transport.joinGroup(IAPP_GROUP, str(self.address)).addErrback(
            lambda failure: self.log.failure("Joining the IAPP group failed", failure)
        )

    def send_add_notify(self, mac: bytes) -> None:
        """
        Announce that station C{mac} associated here.
        """
        self._identifier += 1
        packet = build_add_notify(mac, self._identifier)
        try:
            self.transport.write(packet, (IAPP_GROUP, IAPP_PORT))
        except OSError as error:
            self.counters["send_errors"] += 1
            self.log.warn("Sending an IAPP ADD-notify failed: {error}", error=error)
            return
        self.counters["sent"] += 1

    def datagramReceived(self, datagram: bytes, address: Any) -> None:
        """
        Report an ADD-notify from another AP.
        """
        sender = ipaddress.IPv4Address(address[0])
        if sender == self.address:
            return
        try:
            mac = parse_add_notify(datagram)
        except DecodeError as error:
            self.counters["decode_errors"] += 1
            count = self.counters["decode_errors"]
            if count & (count - 1) == 0:
                self.log.warn(
                    "Dropped malformed IAPP packet from {sender}: {error} ({count} so far)",
                    sender=str(sender),
                    error=error,
                    count=count,
                )
            return
        if mac is None:
            return
        self.counters["received"] += 1
        self._on_add_notify(mac, sender)
