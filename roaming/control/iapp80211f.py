# -*- test-case-name: tests.control.test_core_iapp80211f -*-
"""
IEEE 802.11F (2003) Inter-Access Point Protocol: the ADD-notify packet.

When a station associates, an AP sends an ADD-notify in a UDP datagram to
port 3517 of the multicast group 224.0.1.178 on its LAN. Every other AP that
receives it and has the station associated removes the station. This
module builds and parses that packet; the UDP socket lives in the wire
layer.

Packet layout, all fields in network byte order (the layout that hostapd's
C{src/ap/iapp.c} implements for IEEE 802.11F)::

    IAPP header                      ADD-notify body
    +---------+---------+            +----------+----------+
    | version | command |            | addr len | reserved |
    +---------+---------+            +----------+----------+
    |    identifier     |            |  MAC address (6)    |
    +-------------------+            +---------------------+
    |      length       |            |  sequence number    |
    +-------------------+            +---------------------+

  - version: 0;
  - command: 0 for ADD-notify (L{IappCommand} lists the others);
  - identifier: chosen by the sender to match responses to requests;
  - length: the whole IAPP packet in octets, header included (16 for an
    ADD-notify);
  - addr len: the MAC address length, 6;
  - sequence number: the sequence number of the station's association
    request frame.

Octets after C{length} in the datagram are ignored, as hostapd does.
Every other inconsistency raises L{DecodeError} with protocol
C{"iapp"}.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address

from roaming.errors import DecodeError

__all__ = [
    "ADD_NOTIFY_LENGTH",
    "HEADER_LENGTH",
    "IAPP_MULTICAST_GROUP",
    "IAPP_PORT",
    "IAPP_VERSION",
    "AddNotify",
    "IappCommand",
    "IappHeader",
    "build_add_notify",
    "parse_add_notify",
    "parse_header",
]

#: UDP port of IAPP (IANA "iapp", 3517/udp).
IAPP_PORT = 3517

#: Multicast group of IAPP ADD-notify packets (IANA "IAPP", 224.0.1.178).
IAPP_MULTICAST_GROUP = IPv4Address("224.0.1.178")

#: The only IAPP version defined.
IAPP_VERSION = 0

_HEADER = struct.Struct("!BBHH")
_ADD_NOTIFY_BODY = struct.Struct("!BB6sH")

#: Octets in the IAPP header.
HEADER_LENGTH = _HEADER.size
#: Octets in a whole ADD-notify packet, header included.
ADD_NOTIFY_LENGTH = _HEADER.size + _ADD_NOTIFY_BODY.size

_MAC_LENGTH = 6


class IappCommand(enum.IntEnum):
    """
    IAPP command codes.
    """

    ADD_NOTIFY = 0
    MOVE_NOTIFY = 1
    MOVE_RESPONSE = 2
    SEND_SECURITY_BLOCK = 3
    ACK_SECURITY_BLOCK = 4
    CACHE_NOTIFY = 5
    CACHE_RESPONSE = 6


_KNOWN_COMMANDS = frozenset(IappCommand)


@dataclass(frozen=True, slots=True)
class IappHeader:
    """
    The IAPP header of any IAPP packet.
    """

    version: int
    #: An L{IappCommand}, or the raw value for a code this module does not
    #: know.
    command: IappCommand | int
    identifier: int
    #: Length of the whole packet, header included, in octets.
    length: int


@dataclass(frozen=True, slots=True)
class AddNotify:
    """
    A parsed ADD-notify packet.
    """

    #: The station that associated with the sender.
    mac: bytes
    sequence: int
    identifier: int = 0


def parse_header(data: bytes) -> tuple[IappHeader, bytes]:
    """
    Parse the IAPP header and return it with the packet body (the octets up
    to C{length}).

    @raise DecodeError: if C{data} is shorter than the header or than its
        C{length} field, if C{length} is shorter than the header, or if the
        version is not 0.
    """
    if len(data) < HEADER_LENGTH:
        raise DecodeError(
            "iapp", f"{len(data)} octets, shorter than the {HEADER_LENGTH}-octet header"
        )
    version, command, identifier, length = _HEADER.unpack_from(data)
    if version != IAPP_VERSION:
        raise DecodeError("iapp", f"version {version} is not the supported version {IAPP_VERSION}")
    if length < HEADER_LENGTH:
        raise DecodeError("iapp", f"length field {length} is shorter than the header")
    if length > len(data):
        raise DecodeError("iapp", f"length field {length} exceeds the {len(data)} octets received")
    if command in _KNOWN_COMMANDS:
        command = IappCommand(command)
    return IappHeader(version, command, identifier, length), bytes(data[HEADER_LENGTH:length])


def parse_add_notify(data: bytes) -> AddNotify:
    """
    Parse an ADD-notify packet (the UDP payload).

    @raise DecodeError: if the packet is malformed, is another command, or
        names a group or all-zero MAC address.
    """
    header, body = parse_header(data)
    if header.command != IappCommand.ADD_NOTIFY:
        raise DecodeError("iapp", f"command {int(header.command)} is not ADD-notify (0)")
    if len(body) != _ADD_NOTIFY_BODY.size:
        raise DecodeError(
            "iapp",
            f"ADD-notify body is {len(body)} octets; it must be {_ADD_NOTIFY_BODY.size}",
        )
    address_length, _reserved, mac, sequence = _ADD_NOTIFY_BODY.unpack(body)
    if address_length != _MAC_LENGTH:
        raise DecodeError("iapp", f"address length {address_length} is not {_MAC_LENGTH}")
    if mac[0] & 0x01 or mac == bytes(_MAC_LENGTH):
        raise DecodeError("iapp", f"station address {mac.hex(':')} is not a unicast address")
    return AddNotify(mac, sequence, header.identifier)


def build_add_notify(mac: bytes, sequence: int = 0, identifier: int = 0) -> bytes:
    """
    Build an ADD-notify packet (the UDP payload) for station C{mac}.

    @raise ValueError: if C{mac} is not 6 octets or a number does not fit
        its 16-bit field.
    """
    if len(mac) != _MAC_LENGTH:
        raise ValueError(f"MAC address {mac!r} is not {_MAC_LENGTH} octets")
    for name, value in (("sequence", sequence), ("identifier", identifier)):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} {value} does not fit in 16 bits")
    header = _HEADER.pack(IAPP_VERSION, IappCommand.ADD_NOTIFY, identifier, ADD_NOTIFY_LENGTH)
    return header + _ADD_NOTIFY_BODY.pack(_MAC_LENGTH, 0, mac, sequence)
