# -*- test-case-name: tests.daemons.test_lan -*-
"""
The layer 2 update frame that an AP sends on its LAN when a station
associates.

The frame is an IEEE 802.2 LLC XID frame sent to the broadcast address with
the station's MAC address as its source, so every switch learns that the
station is now reached through this AP (IEEE 802.11F-2003 section 3.1;
hostapd sends the same frame as C{hostapd_send_l2_update}). The IEEE
802.11F ADD-notify that goes with it is in L{roaming.control.iapp80211f}
and L{roaming.control.iapp_udp}.
"""

from __future__ import annotations

import struct

__all__ = ["build_layer2_update"]

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


def build_layer2_update(mac: bytes) -> bytes:
    """
    Build the layer 2 update frame for station C{mac}, padded to 60 bytes.
    """
    frame = _L2_UPDATE.pack(_BROADCAST, mac, _LLC_LENGTH, 0x00, 0x01, 0xAF, _XID_INFO)
    return frame.ljust(_MINIMUM_FRAME, b"\x00")
