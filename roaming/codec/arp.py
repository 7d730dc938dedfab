# -*- test-case-name: tests.codec.test_arp -*-
"""
ARP for IPv4 over Ethernet (RFC 826).

Only the Ethernet/IPv4 form is decoded: hardware type 1, protocol type
0x0800, 6-byte hardware and 4-byte protocol addresses.  IPv4 addresses are
C{int}, MAC addresses 6-byte C{bytes}.
"""

__all__ = ["ARP_LENGTH", "ArpOperation", "ArpPacket", "build_arp", "parse_arp"]

import struct
from dataclasses import dataclass
from enum import IntEnum

from roaming.errors import DecodeError

PROTOCOL = "arp"

_PACKET = struct.Struct("!HHBBH6sI6sI")
ARP_LENGTH = _PACKET.size
"""Length of an Ethernet/IPv4 ARP packet, 28 bytes."""

_HARDWARE_ETHERNET = 1
_PROTOCOL_IPV4 = 0x0800


class ArpOperation(IntEnum):
    """ARP operation codes (RFC 826, "Packet format")."""

    REQUEST = 1
    REPLY = 2


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP request or reply."""

    operation: int
    """L{ArpOperation} value."""
    sender_mac: bytes
    sender_ip: int
    target_mac: bytes
    target_ip: int

    @property
    def is_gratuitous(self) -> bool:
        """
        Whether the packet announces the sender's own address: sender and
        target IPv4 addresses are equal (RFC 5227 section 2.3).
        """
        return self.sender_ip == self.target_ip


def parse_arp(packet: bytes) -> ArpPacket:
    """
    Parse an ARP packet.  Bytes after the 28-byte packet (Ethernet padding)
    are ignored.

    @raise DecodeError: the packet is shorter than 28 bytes, is not
        Ethernet/IPv4 ARP, or its operation is neither request nor reply.
    """
    if len(packet) < ARP_LENGTH:
        raise DecodeError(PROTOCOL, f"packet of {len(packet)} bytes is shorter than {ARP_LENGTH}")
    (
        hardware_type,
        protocol_type,
        hardware_length,
        protocol_length,
        operation,
        sender_mac,
        sender_ip,
        target_mac,
        target_ip,
    ) = _PACKET.unpack_from(packet)
    if (hardware_type, protocol_type, hardware_length, protocol_length) != (
        _HARDWARE_ETHERNET,
        _PROTOCOL_IPV4,
        6,
        4,
    ):
        raise DecodeError(
            PROTOCOL,
            f"unsupported hardware type {hardware_type}, protocol type 0x{protocol_type:04x}, "
            f"address lengths {hardware_length}/{protocol_length}; only Ethernet/IPv4 is decoded",
        )
    if operation not in (ArpOperation.REQUEST, ArpOperation.REPLY):
        raise DecodeError(PROTOCOL, f"unsupported operation {operation}; expected 1 or 2")
    return ArpPacket(operation, sender_mac, sender_ip, target_mac, target_ip)


def build_arp(packet: ArpPacket) -> bytes:
    """
    Serialise C{packet} as 28 bytes.

    @raise ValueError: a field is out of range.
    """
    if packet.operation not in (ArpOperation.REQUEST, ArpOperation.REPLY):
        raise ValueError(f"invalid ARP operation {packet.operation}: expected 1 or 2")
    for name, mac in (("sender", packet.sender_mac), ("target", packet.target_mac)):
        if len(mac) != 6:
            raise ValueError(f"invalid {name} MAC address {mac!r}: expected 6 bytes")
    try:
        return _PACKET.pack(
            _HARDWARE_ETHERNET,
            _PROTOCOL_IPV4,
            6,
            4,
            packet.operation,
            packet.sender_mac,
            packet.sender_ip,
            packet.target_mac,
            packet.target_ip,
        )
    except struct.error as error:
        raise ValueError(f"invalid ARP field in {packet!r}: {error}") from None
