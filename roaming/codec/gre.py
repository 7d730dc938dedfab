# -*- test-case-name: tests.codec.test_gre -*-
"""
Generic Routing Encapsulation headers: RFC 2784 with the key and sequence
number extensions of RFC 2890.

Wire layout (RFC 2784 section 2, RFC 2890 section 2)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |C| |K|S| Reserved0       | Ver |         Protocol Type         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      Checksum (optional)      |       Reserved1 (optional)    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Key (optional)                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Sequence Number (optional)                    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

L{parse_gre} and L{build_gre} handle every combination of the C, K and S
bits. The payload is returned and accepted as it is, whatever its protocol
type; the tunnel engine (L{roaming.tunnel}) carries Ethernet frames with
L{ProtocolType.TRANSPARENT_ETHERNET_BRIDGING}.
"""

from __future__ import annotations

__all__ = [
    "GRE_IP_PROTOCOL",
    "GRE_UDP_PORT",
    "GreFlags",
    "GreHeader",
    "ProtocolType",
    "build_gre",
    "gre_header_length",
    "internet_checksum",
    "parse_gre",
]

import enum
import struct
from dataclasses import dataclass

from roaming.errors import DecodeError

GRE_IP_PROTOCOL = 47
"""IPv4 protocol number of GRE (IANA "Assigned Internet Protocol Numbers")."""

GRE_UDP_PORT = 4754
"""UDP destination port of GRE-in-UDP (RFC 8086 section 3.1)."""


class GreFlags(enum.IntFlag):
    """
    Bits of the first 16-bit word of a GRE header, before the version.
    """

    CHECKSUM = 0x8000
    """C: the checksum and Reserved1 fields are present (RFC 2784 section 2.2)."""

    KEY = 0x2000
    """K: the key field is present (RFC 2890 section 2)."""

    SEQUENCE = 0x1000
    """S: the sequence number field is present (RFC 2890 section 2)."""


class ProtocolType(enum.IntEnum):
    """
    Payload protocol types (EtherTypes, RFC 2784 section 2.4) that roaming uses.

    Other values are parsed and built as plain integers.
    """

    KEEPALIVE_REPLY = 0x0000
    """A reflected keepalive: a GRE header with no payload (see L{roaming.tunnel})."""

    IPV4 = 0x0800
    TRANSPARENT_ETHERNET_BRIDGING = 0x6558
    IPV6 = 0x86DD


# RFC 2784 section 2.3: a receiver that does not implement RFC 1701 must
# discard a packet with any of bits 1-5 set. RFC 2890 gives bits 2 and 3 to
# K and S, which leaves bit 1 (routing present), bit 4 (strict source route)
# and bit 5 (the top bit of the RFC 1701 recursion control).
_REJECTED_RESERVED0 = 0x4000 | 0x0800 | 0x0400
_VERSION_MASK = 0x0007

_BASE = struct.Struct("!HH")
_WORD = struct.Struct("!I")
_CHECKSUM = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class GreHeader:
    """
    A parsed GRE header.

    The checksum field itself is not kept: L{parse_gre} verifies it and
    L{build_gre} computes it, so only whether it is present matters.
    """

    protocol_type: int
    """EtherType of the payload, such as 0x6558 for Ethernet frames."""

    key: int | None = None
    """32-bit key (RFC 2890 section 2.1), or C{None} when K is clear."""

    sequence: int | None = None
    """32-bit sequence number (RFC 2890 section 2.2), or C{None} when S is clear."""

    checksum_present: bool = False
    """Whether C is set, so that the header carries a checksum."""

    @property
    def length(self) -> int:
        """
        Length in bytes of this header on the wire.
        """
        return gre_header_length(
            checksum=self.checksum_present,
            key=self.key is not None,
            sequence=self.sequence is not None,
        )


def gre_header_length(*, checksum: bool = False, key: bool = False, sequence: bool = False) -> int:
    """
    Compute the length of a GRE header: 4 bytes plus 4 for each optional field.
    """
    return 4 + 4 * (checksum + key + sequence)


def internet_checksum(data: bytes) -> int:
    """
    Compute the RFC 1071 Internet checksum of C{data}: the one's complement
    of the one's complement sum of its big-endian 16-bit words.

    An odd final byte is padded with a zero byte (RFC 1071 section 4.1). Over
    data that already contains a correct checksum field the result is 0.
    """
    # Because 2**16 = 1 modulo 0xFFFF, the whole buffer read as one big integer
    # is congruent to the sum of its 16-bit words, and the end-around carry of
    # one's complement addition is exactly reduction modulo 0xFFFF. A single
    # int.from_bytes and one modulo are much cheaper in CPython than a loop.
    number = int.from_bytes(data, "big")
    if len(data) % 2:
        number <<= 8
    total = number % 0xFFFF
    if total == 0 and number != 0:
        # One's complement sums of non-zero data are never +0; they are -0.
        total = 0xFFFF
    return ~total & 0xFFFF


def parse_gre(data: bytes) -> tuple[GreHeader, bytes]:
    """
    Parse a GRE header and return it with the payload that follows.

    @param data: the GRE header and payload, without the outer IPv4 or UDP
        header.
    @raise DecodeError: when the header is truncated, the version is not 0,
        a bit that RFC 2784 section 2.3 requires a receiver to reject is set,
        or the checksum is present and wrong.
    """
    if len(data) < 4:
        raise DecodeError("gre", f"header truncated: {len(data)} bytes, need at least 4")
    flags, protocol_type = _BASE.unpack_from(data, 0)

    version = flags & _VERSION_MASK
    if version != 0:
        # RFC 2784 section 2.3.1: the version must be 0. Version 1 is the
        # enhanced GRE of PPTP (RFC 2637), which roaming does not carry.
        raise DecodeError("gre", f"unsupported version {version}: only version 0 is valid")
    if flags & _REJECTED_RESERVED0:
        raise DecodeError(
            "gre",
            f"reserved bits set in flags 0x{flags:04x}: routing and "
            "recursion control (RFC 1701) are not supported",
        )

    checksum_present = bool(flags & GreFlags.CHECKSUM)
    has_key = bool(flags & GreFlags.KEY)
    has_sequence = bool(flags & GreFlags.SEQUENCE)
    length = 4 + 4 * (checksum_present + has_key + has_sequence)
    if len(data) < length:
        raise DecodeError(
            "gre", f"header truncated: {len(data)} bytes, flags 0x{flags:04x} need {length}"
        )

    offset = 4
    if checksum_present:
        # RFC 2784 section 2.5: the checksum covers the GRE header and the
        # payload; Reserved1 is ignored on receipt (section 2.6).
        if internet_checksum(data) != 0:
            (checksum, _reserved1) = _CHECKSUM.unpack_from(data, 4)
            raise DecodeError("gre", f"bad checksum 0x{checksum:04x} over {len(data)} bytes")
        offset += 4
    key = None
    if has_key:
        (key,) = _WORD.unpack_from(data, offset)
        offset += 4
    sequence = None
    if has_sequence:
        (sequence,) = _WORD.unpack_from(data, offset)
        offset += 4

    header = GreHeader(protocol_type, key, sequence, checksum_present)
    return header, data[offset:]


def build_gre(
    protocol_type: int,
    payload: bytes,
    *,
    key: int | None = None,
    sequence: int | None = None,
    checksum: bool = False,
) -> bytes:
    """
    Build a GRE header followed by C{payload}.

    Reserved0, the version and Reserved1 are sent as zero (RFC 2784 sections
    2.3 and 2.6). With C{checksum}, the checksum is computed over the header
    and the payload (RFC 2784 section 2.5).

    @raise ValueError: when the protocol type, key or sequence number does not
        fit its field.
    """
    if not 0 <= protocol_type <= 0xFFFF:
        raise ValueError(f"protocol type {protocol_type!r} does not fit 16 bits")
    flags = 0
    fields = []
    if checksum:
        flags |= GreFlags.CHECKSUM
        fields.append(b"\x00\x00\x00\x00")
    if key is not None:
        if not 0 <= key <= 0xFFFFFFFF:
            raise ValueError(f"GRE key {key!r} does not fit 32 bits")
        flags |= GreFlags.KEY
        fields.append(_WORD.pack(key))
    if sequence is not None:
        if not 0 <= sequence <= 0xFFFFFFFF:
            raise ValueError(f"GRE sequence number {sequence!r} does not fit 32 bits")
        flags |= GreFlags.SEQUENCE
        fields.append(_WORD.pack(sequence))

    packet = b"".join((_BASE.pack(flags, protocol_type), *fields, payload))
    if checksum:
        value = internet_checksum(packet)
        packet = packet[:4] + _CHECKSUM.pack(value, 0) + packet[8:]
    return packet
