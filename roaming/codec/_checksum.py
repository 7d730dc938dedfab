# -*- test-case-name: tests.codec.test_checksum -*-
"""
The Internet checksum of RFC 1071, shared by IPv4, UDP, ICMP, IGMP and ICMPv6.
"""

__all__ = ["internet_checksum", "ipv4_pseudo_header"]

import struct
import sys
from array import array

_PSEUDO_HEADER = struct.Struct("!IIxBH")
_SWAP_RESULT = sys.byteorder == "little"


def internet_checksum(data: bytes) -> int:
    """
    Compute the 16-bit one's complement of the one's complement sum of
    C{data} taken as big-endian 16-bit words (RFC 1071 section 1).

    An odd final byte is padded with a zero byte.  Over data that contains
    a correct checksum field the result is 0.
    """
    if len(data) % 2:
        data += b"\x00"
    # The sum is independent of byte order (RFC 1071 section 2(B)), so the
    # words are summed in native order and the result swapped at the end.
    total = sum(array("H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    checksum = ~total & 0xFFFF
    if _SWAP_RESULT:
        checksum = (checksum >> 8) | (checksum & 0xFF) << 8
    return checksum


def ipv4_pseudo_header(source: int, destination: int, protocol: int, length: int) -> bytes:
    """
    Build the 12-byte IPv4 pseudo-header that UDP and TCP include in their
    checksum (RFC 768, "Fields").
    """
    return _PSEUDO_HEADER.pack(source, destination, protocol, length)
