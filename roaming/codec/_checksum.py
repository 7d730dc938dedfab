# -*- test-case-name: tests.codec.test_checksum -*-
"""
The Internet checksum of RFC 1071, shared by IPv4, UDP, ICMP and IGMP.
"""

__all__ = ["internet_checksum", "ipv4_pseudo_header"]

import struct

_PSEUDO_HEADER = struct.Struct("!IIxBH")


def internet_checksum(data: bytes) -> int:
    """
    Compute the 16-bit one's complement of the one's complement sum of
    C{data} taken as big-endian 16-bit words (RFC 1071 section 1).

    An odd final byte is padded with a zero byte (RFC 1071 section 4.1).
    Over data that contains a correct checksum field the result is 0.
    """
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_pseudo_header(source: int, destination: int, protocol: int, length: int) -> bytes:
    """
    Build the 12-byte IPv4 pseudo-header that UDP and TCP include in their
    checksum (RFC 768, "Fields").
    """
    return _PSEUDO_HEADER.pack(source, destination, protocol, length)
