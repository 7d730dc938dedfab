# -*- test-case-name: tests.codec.test_udp -*-
"""
UDP datagrams over IPv4 (RFC 768).

The checksum covers an IPv4 pseudo-header, so building and verifying take the
source and destination addresses of the enclosing packet.
"""

__all__ = ["HEADER_LENGTH", "UdpDatagram", "build_udp", "parse_udp", "udp_checksum"]

import struct
from dataclasses import dataclass, field

from roaming.codec._checksum import internet_checksum, ipv4_pseudo_header
from roaming.errors import DecodeError

PROTOCOL = "udp"

_HEADER = struct.Struct("!HHHH")
HEADER_LENGTH = _HEADER.size
"""Length of the UDP header, 8 bytes."""

_IPPROTO_UDP = 17
_MAX_LENGTH = 0xFFFF


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """A UDP datagram."""

    source_port: int
    destination_port: int
    payload: bytes
    """The bytes after the header, up to the UDP length."""
    checksum: int | None = field(default=None, compare=False)
    """
    Checksum as received; 0 means the sender computed none (RFC 768).
    L{build_udp} computes it when it is C{None}.
    """


def udp_checksum(source: int, destination: int, datagram: bytes) -> int:
    """
    Compute the checksum of a serialised datagram whose checksum field is
    zero, over the IPv4 pseudo-header (RFC 768).  A computed 0 is sent as
    0xffff, because 0 means no checksum.
    """
    pseudo_header = ipv4_pseudo_header(source, destination, _IPPROTO_UDP, len(datagram))
    return internet_checksum(pseudo_header + datagram) or 0xFFFF


def parse_udp(
    datagram: bytes, source: int | None = None, destination: int | None = None
) -> UdpDatagram:
    """
    Parse a UDP datagram.  Bytes after the UDP length are ignored.

    @param source: IPv4 source address of the enclosing packet.
    @param destination: IPv4 destination address of the enclosing packet.
        When both addresses are given and the checksum is not 0, the
        checksum is verified.
    @raise DecodeError: the datagram is shorter than its header, the UDP
        length is below 8 or longer than the data, or the checksum is wrong.
    """
    size = len(datagram)
    if size < HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"datagram of {size} bytes is shorter than the 8-byte header")
    source_port, destination_port, length, checksum = _HEADER.unpack_from(datagram)
    if length < HEADER_LENGTH:
        raise DecodeError(PROTOCOL, f"length {length} is shorter than the 8-byte header")
    if length > size:
        raise DecodeError(PROTOCOL, f"length {length} exceeds the {size} bytes present")
    if checksum and source is not None and destination is not None:
        pseudo_header = ipv4_pseudo_header(source, destination, _IPPROTO_UDP, length)
        if internet_checksum(pseudo_header + datagram[:length]) != 0:
            raise DecodeError(PROTOCOL, f"checksum 0x{checksum:04x} is wrong")
    return UdpDatagram(source_port, destination_port, datagram[HEADER_LENGTH:length], checksum)


def build_udp(datagram: UdpDatagram, source: int, destination: int) -> bytes:
    """
    Serialise C{datagram}, computing the checksum over the IPv4
    pseudo-header of C{source} and C{destination} unless
    C{datagram.checksum} is set.

    @raise ValueError: a port is out of range or the datagram would exceed
        65535 bytes.
    """
    length = HEADER_LENGTH + len(datagram.payload)
    if length > _MAX_LENGTH:
        raise ValueError(f"UDP datagram of {length} bytes exceeds the maximum of 65535")
    try:
        header = _HEADER.pack(
            datagram.source_port,
            datagram.destination_port,
            length,
            0 if datagram.checksum is None else datagram.checksum,
        )
    except struct.error as error:
        raise ValueError(f"invalid UDP field in {datagram!r}: {error}") from None
    data = header + datagram.payload
    if datagram.checksum is None:
        checksum = udp_checksum(source, destination, data)
        data = data[:6] + checksum.to_bytes(2, "big") + data[8:]
    return data
