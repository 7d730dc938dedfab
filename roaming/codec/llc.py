# -*- test-case-name: tests.codec.test_llc -*-
"""
IEEE 802.2 LLC PDUs and the XID "layer 2 update" frame.

An access point broadcasts a layer 2 update when a station associates, with
the station's MAC as source, so that every learning bridge on the LAN moves
its entry for that MAC to the port towards the access point.  The frame is an
IEEE 802.3 length frame carrying an LLC XID PDU: DSAP 0 (null), SSAP 0
(null), control 0xAF (XID, P/F bit clear) and three information bytes: format
identifier 0x81, LLC class 0x01 (Type 1) and receive window 0.
"""

__all__ = [
    "LAYER2_UPDATE_INFORMATION",
    "XID_CONTROL",
    "XID_FORMAT_IDENTIFIER",
    "Layer2Update",
    "LlcPdu",
    "build_layer2_update",
    "build_llc",
    "parse_layer2_update",
    "parse_llc",
]

from dataclasses import dataclass

from roaming.codec.ethernet import BROADCAST, EthernetFrame, build_ethernet, format_mac
from roaming.errors import DecodeError

PROTOCOL = "llc"

XID_CONTROL = 0xAF
"""Control byte of an XID PDU with the poll/final bit clear (IEEE 802.2)."""

_POLL_FINAL = 0x10
_RESPONSE = 0x01
_UNNUMBERED = 0x03

XID_FORMAT_IDENTIFIER = 0x81
"""First byte of the XID information field: the IEEE basic format."""

_LLC_CLASS_TYPE_1 = 0x01

LAYER2_UPDATE_INFORMATION = bytes((XID_FORMAT_IDENTIFIER, _LLC_CLASS_TYPE_1, 0x00))
"""XID information of a layer 2 update: format 0x81, Type 1 LLC, window 0."""


@dataclass(frozen=True, slots=True)
class LlcPdu:
    """
    An LLC PDU: addresses, control field and information field.
    """

    dsap: int
    """Destination service access point; bit 0 set is a group address."""
    ssap: int
    """Source service access point; bit 0 set marks a response."""
    control: int
    """
    The control field as a big-endian integer of its wire bytes: one byte
    for unnumbered (U-format) PDUs, whose two low bits are 1, and two bytes
    for I-format and S-format PDUs (IEEE 802.2).
    """
    information: bytes = b""


@dataclass(frozen=True, slots=True)
class Layer2Update:
    """
    An XID layer 2 update for one station.
    """

    station: bytes
    """MAC address of the station that associated: the frame's source."""
    response: bool = False
    """
    Whether the SSAP has the command/response bit set.  IEEE 802.11F uses
    SSAP 0; Linux cfg80211 (cfg80211_send_layer2_update) sends SSAP 1.
    """
    receive_window: int = 0
    """Receive window from the third information byte; 0 in 802.11F."""


def parse_llc(pdu: bytes) -> LlcPdu:
    """
    Parse an LLC PDU, the payload of an IEEE 802.3 length frame.

    @raise DecodeError: the PDU is shorter than its addresses and control
        field.
    """
    size = len(pdu)
    if size < 3:
        raise DecodeError(PROTOCOL, f"PDU of {size} bytes is shorter than the 3-byte minimum")
    dsap, ssap, first = pdu[0], pdu[1], pdu[2]
    if first & _UNNUMBERED == _UNNUMBERED:
        return LlcPdu(dsap, ssap, first, pdu[3:])
    if size < 4:
        raise DecodeError(
            PROTOCOL, f"I- or S-format PDU of {size} bytes lacks its second control byte"
        )
    return LlcPdu(dsap, ssap, first << 8 | pdu[3], pdu[4:])


def build_llc(pdu: LlcPdu) -> bytes:
    """
    Serialise C{pdu}.

    @raise ValueError: an address is out of range or the control field does
        not match its format: one byte with low bits 11, or two bytes
        whose first byte does not end in 11.
    """
    if not (0 <= pdu.dsap <= 0xFF and 0 <= pdu.ssap <= 0xFF):
        raise ValueError(f"invalid DSAP {pdu.dsap} or SSAP {pdu.ssap}: expected 0 to 255")
    if 0 <= pdu.control <= 0xFF and pdu.control & _UNNUMBERED == _UNNUMBERED:
        control = bytes((pdu.control,))
    elif 0x100 <= pdu.control <= 0xFFFF and (pdu.control >> 8) & _UNNUMBERED != _UNNUMBERED:
        control = pdu.control.to_bytes(2, "big")
    else:
        raise ValueError(
            f"invalid LLC control field 0x{pdu.control:x}: a U-format control is one byte "
            "ending in binary 11, an I- or S-format control is two bytes"
        )
    return bytes((pdu.dsap, pdu.ssap)) + control + pdu.information


def build_layer2_update(update: Layer2Update) -> bytes:
    """
    Build the whole Ethernet frame of a layer 2 update: broadcast
    destination, the station as source, 802.3 length 6 and the XID PDU.

    The frame is 20 bytes and not padded to the 60-byte minimum: the kernel
    or the NIC pads it.

    @raise ValueError: the station is not an individual, nonzero MAC address
        or the receive window is out of range.
    """
    if not 0 <= update.receive_window <= 0xFF:
        raise ValueError(f"invalid receive window {update.receive_window}: expected 0 to 255")
    pdu = LlcPdu(
        dsap=0,
        ssap=_RESPONSE if update.response else 0,
        control=XID_CONTROL,
        information=bytes((XID_FORMAT_IDENTIFIER, _LLC_CLASS_TYPE_1, update.receive_window)),
    )
    return build_ethernet(EthernetFrame(BROADCAST, update.station, None, build_llc(pdu)))


def parse_layer2_update(frame: EthernetFrame) -> Layer2Update:
    """
    Recognise a layer 2 update in a parsed Ethernet frame, tagged or not.

    Accepted: broadcast destination, an 802.3 length frame, DSAP 0, SSAP 0
    or 1, an XID control byte with either value of the P/F bit, format
    identifier 0x81 and LLC class 1.  Any receive window is accepted.

    @raise DecodeError: the frame is not a layer 2 update.
    """
    if frame.ethertype is not None:
        raise DecodeError(
            PROTOCOL, f"EtherType 0x{frame.ethertype:04x} frame is not an 802.3 LLC frame"
        )
    if frame.destination != BROADCAST:
        raise DecodeError(
            PROTOCOL,
            f"layer 2 update must be broadcast, not sent to {format_mac(frame.destination)}",
        )
    pdu = parse_llc(frame.payload)
    if pdu.dsap != 0 or pdu.ssap & ~_RESPONSE:
        raise DecodeError(PROTOCOL, f"DSAP {pdu.dsap} and SSAP {pdu.ssap} are not the null SAPs")
    if pdu.control & ~_POLL_FINAL != XID_CONTROL:
        raise DecodeError(PROTOCOL, f"control 0x{pdu.control:02x} is not XID")
    info = pdu.information
    if len(info) != 3 or info[0] != XID_FORMAT_IDENTIFIER or info[1] != _LLC_CLASS_TYPE_1:
        raise DecodeError(PROTOCOL, f"XID information {info.hex()} is not format 81, class 01")
    return Layer2Update(frame.source, bool(pdu.ssap & _RESPONSE), info[2])
