# -*- test-case-name: tests.codec.test_ethernet -*-
"""
Ethernet II and IEEE 802.3 frames with IEEE 802.1Q and 802.1ad VLAN tags.

Frames are taken as a TAP device or a packet socket delivers them: they start
at the destination address and carry no preamble and no frame check sequence.
The two bytes after the addresses (and after any VLAN tags) are an EtherType
when they are 0x0600 or more, and the length of an IEEE 802.3 frame, whose
payload is an IEEE 802.2 LLC PDU, when they are 1500 or less (IEEE 802.3-2018
clause 3.2.6).
"""

__all__ = [
    "BROADCAST",
    "HEADER_LENGTH",
    "MAX_FRAME_LENGTH",
    "MAX_LLC_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "MAX_VLAN_TAGS",
    "EtherType",
    "EthernetFrame",
    "VlanTag",
    "build_ethernet",
    "format_mac",
    "is_multicast",
    "parse_ethernet",
    "parse_mac",
]

import struct
from dataclasses import dataclass
from enum import IntEnum

from roaming.errors import DecodeError

PROTOCOL = "ethernet"

HEADER_LENGTH = 14
"""Destination, source and EtherType or length: 6 + 6 + 2 bytes."""

TAG_LENGTH = 4

MAX_VLAN_TAGS = 4
"""
Maximum number of stacked VLAN tags.  802.1ad (QinQ) uses two; deeper stacks
are rare, and the bound keeps the work per frame fixed.
"""

MAX_PAYLOAD_LENGTH = 9216
"""
Maximum payload after the last tag: 9216 bytes is the largest jumbo frame
that common switches accept.
"""

MAX_FRAME_LENGTH = HEADER_LENGTH + MAX_VLAN_TAGS * TAG_LENGTH + MAX_PAYLOAD_LENGTH
"""Maximum frame length, 9246 bytes, without frame check sequence."""

MAX_LLC_LENGTH = 1500
"""Largest value of an IEEE 802.3 length field (IEEE 802.3-2018 clause 3.2.6)."""

_MIN_ETHERTYPE = 0x0600
_MIN_LLC_LENGTH = 3
_MAX_VLAN_ID = 4094

BROADCAST = b"\xff" * 6
"""The broadcast MAC address ff:ff:ff:ff:ff:ff."""

_HEADER = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")


class EtherType(IntEnum):
    """
    EtherTypes that roaming decodes (IEEE Registration Authority).
    """

    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100
    IPV6 = 0x86DD
    QINQ = 0x88A8
    QINQ_LEGACY = 0x9100


TAG_PROTOCOL_IDS = frozenset({EtherType.VLAN, EtherType.QINQ, EtherType.QINQ_LEGACY})
"""
Tag protocol identifiers recognised as a VLAN tag: 0x8100 (802.1Q C-tag),
0x88a8 (802.1ad S-tag) and 0x9100, which pre-standard QinQ switches use.
"""


@dataclass(frozen=True, slots=True)
class VlanTag:
    """
    One IEEE 802.1Q tag: tag protocol identifier and tag control information
    (IEEE 802.1Q-2018 clause 9.6).
    """

    vlan_id: int
    """VLAN identifier, 0 to 4094; 0 marks a priority-only tag."""
    priority: int = 0
    """Priority code point, 0 to 7."""
    drop_eligible: bool = False
    """Drop eligible indicator (DEI)."""
    tpid: int = EtherType.VLAN
    """Tag protocol identifier, one of L{TAG_PROTOCOL_IDS}."""


@dataclass(frozen=True, slots=True)
class EthernetFrame:
    """
    An Ethernet frame with its VLAN tags, outermost tag first.
    """

    destination: bytes
    """Destination MAC address, 6 bytes."""
    source: bytes
    """Source MAC address, 6 bytes; never a group address and never zero."""
    ethertype: int | None
    """
    EtherType of the payload, or C{None} for an IEEE 802.3 length frame,
    whose payload is an LLC PDU.
    """
    payload: bytes
    """
    Bytes after the EtherType.  For an Ethernet II frame they include any
    padding up to the 60-byte minimum; the network layer's own length field
    removes it.  For an 802.3 frame they are exactly the C{length} bytes and
    the padding is dropped.
    """
    tags: tuple[VlanTag, ...] = ()
    """VLAN tags, outermost first."""

    @property
    def vlan_id(self) -> int | None:
        """
        VLAN identifier of the innermost tag, or C{None} for an untagged frame.
        """
        if not self.tags:
            return None
        return self.tags[-1].vlan_id


def is_multicast(mac: bytes) -> bool:
    """
    Return whether C{mac} is a group address, broadcast included: the
    least significant bit of its first byte (the I/G bit) is set.
    """
    return bool(mac[0] & 1)


def format_mac(mac: bytes) -> str:
    """
    Format a 6-byte MAC address as lower-case colon-separated hex.
    """
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    """
    Parse a MAC address written as six hex pairs separated by colons or
    hyphens.

    @raise ValueError: C{text} is not such an address.
    """
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(
            f"invalid MAC address {text!r}: expected six hex pairs such as 02:00:5e:10:00:01"
        )
    try:
        return bytes.fromhex("".join(parts))
    except ValueError:
        raise ValueError(
            f"invalid MAC address {text!r}: expected six hex pairs such as 02:00:5e:10:00:01"
        ) from None


def parse_ethernet(frame: bytes) -> EthernetFrame:
    """
    Parse an Ethernet frame and its VLAN tags.

    @raise DecodeError: the frame is shorter than its headers, longer than
        L{MAX_FRAME_LENGTH}, has more than L{MAX_VLAN_TAGS} tags, has a
        group or zero source address, a VLAN ID of 4095, a type field
        between 1501 and 1535, or an 802.3 length that does not fit.
    """
    size = len(frame)
    if size < HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"runt frame of {size} bytes, shorter than the 14-byte header")
    if size > MAX_FRAME_LENGTH:
        raise DecodeError(
            PROTOCOL, f"frame of {size} bytes exceeds the maximum of {MAX_FRAME_LENGTH}"
        )

    destination, source, type_or_length = _HEADER.unpack_from(frame)
    # A source address is always individual (IEEE 802.3), and Linux bridges
    # also drop zero sources (is_valid_ether_addr in net/bridge/br_input.c).
    if source[0] & 1:
        raise DecodeError(PROTOCOL, f"source {format_mac(source)} is a group address")
    if source == b"\x00" * 6:
        raise DecodeError(PROTOCOL, "source address is 00:00:00:00:00:00")

    offset = HEADER_LENGTH
    tags: list[VlanTag] = []
    while type_or_length in TAG_PROTOCOL_IDS:
        if len(tags) == MAX_VLAN_TAGS:
            raise DecodeError(PROTOCOL, f"more than {MAX_VLAN_TAGS} stacked VLAN tags")
        if size < offset + TAG_LENGTH:
            raise DecodeError(
                PROTOCOL, f"frame of {size} bytes truncated inside VLAN tag {len(tags) + 1}"
            )
        tpid = type_or_length
        tci, type_or_length = _TAG.unpack_from(frame, offset)
        vlan_id = tci & 0x0FFF
        if vlan_id > _MAX_VLAN_ID:
            # IEEE 802.1Q-2018 Table 9-2: VID 0xFFF is reserved and never sent.
            raise DecodeError(PROTOCOL, "VLAN ID 4095 is reserved")
        tags.append(VlanTag(vlan_id, tci >> 13, bool(tci & 0x1000), tpid))
        offset += TAG_LENGTH

    if type_or_length >= _MIN_ETHERTYPE:
        return EthernetFrame(destination, source, type_or_length, frame[offset:], tuple(tags))
    if type_or_length > MAX_LLC_LENGTH:
        raise DecodeError(
            PROTOCOL, f"type field 0x{type_or_length:04x} is neither a length nor an EtherType"
        )
    if type_or_length < _MIN_LLC_LENGTH:
        raise DecodeError(PROTOCOL, f"802.3 length {type_or_length} is too short for an LLC header")
    end = offset + type_or_length
    if end > size:
        raise DecodeError(
            PROTOCOL, f"802.3 length {type_or_length} exceeds the {size - offset} bytes present"
        )
    return EthernetFrame(destination, source, None, frame[offset:end], tuple(tags))


def build_ethernet(frame: EthernetFrame) -> bytes:
    """
    Serialise C{frame}.  An 802.3 frame gets the payload length as its type
    field.  No padding is added: a TAP device or the kernel pads short frames.

    @raise ValueError: a field is out of range or the frame would be longer
        than L{MAX_FRAME_LENGTH}.
    """
    _check_address("destination", frame.destination)
    _check_address("source", frame.source)
    if frame.source[0] & 1 or frame.source == b"\x00" * 6:
        raise ValueError(
            f"invalid source MAC address {format_mac(frame.source)}: a source must be an "
            "individual, nonzero address"
        )
    if len(frame.tags) > MAX_VLAN_TAGS:
        raise ValueError(f"{len(frame.tags)} VLAN tags exceed the maximum of {MAX_VLAN_TAGS}")

    if frame.ethertype is None:
        if not _MIN_LLC_LENGTH <= len(frame.payload) <= MAX_LLC_LENGTH:
            raise ValueError(
                f"802.3 payload of {len(frame.payload)} bytes must be 3 to 1500 bytes; "
                "use an EtherType for other payloads"
            )
        type_or_length = len(frame.payload)
    elif _MIN_ETHERTYPE <= frame.ethertype <= 0xFFFF and frame.ethertype not in TAG_PROTOCOL_IDS:
        type_or_length = frame.ethertype
    else:
        raise ValueError(
            f"invalid EtherType 0x{frame.ethertype:x}: expected 0x0600 to 0xffff and no "
            "tag protocol identifier (put VLAN tags in tags)"
        )

    parts = [frame.destination, frame.source]
    for tag in frame.tags:
        parts.append(_build_tag(tag))
    parts.append(type_or_length.to_bytes(2, "big"))
    parts.append(frame.payload)
    data = b"".join(parts)
    if len(data) > MAX_FRAME_LENGTH:
        raise ValueError(f"frame of {len(data)} bytes exceeds the maximum of {MAX_FRAME_LENGTH}")
    return data


def _build_tag(tag: VlanTag) -> bytes:
    if tag.tpid not in TAG_PROTOCOL_IDS:
        raise ValueError(
            f"invalid tag protocol identifier 0x{tag.tpid:x}: use 0x8100, 0x88a8 or 0x9100"
        )
    if not 0 <= tag.vlan_id <= _MAX_VLAN_ID:
        raise ValueError(f"invalid VLAN ID {tag.vlan_id}: expected 0 to 4094")
    if not 0 <= tag.priority <= 7:
        raise ValueError(f"invalid VLAN priority {tag.priority}: expected 0 to 7")
    tci = tag.priority << 13 | int(tag.drop_eligible) << 12 | tag.vlan_id
    return struct.pack("!HH", tag.tpid, tci)


def _check_address(name: str, mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"invalid {name} MAC address {mac!r}: expected 6 bytes")
