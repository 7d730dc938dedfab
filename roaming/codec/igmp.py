# -*- test-case-name: tests.codec.test_igmp -*-
"""
IGMP messages: version 1 (RFC 1112), version 2 (RFC 2236) and version 3
(RFC 3376).

L{parse_igmp} returns one of three types: L{IgmpMessage} for the 8-byte
messages (v1/v2 queries, v1/v2 reports, leave), L{IgmpV3Query} and
L{IgmpV3Report}.  Group and source addresses are C{int}.
"""

__all__ = [
    "IgmpGroupRecord",
    "IgmpMessage",
    "IgmpRecordType",
    "IgmpType",
    "IgmpV3Query",
    "IgmpV3Report",
    "build_igmp",
    "parse_igmp",
]

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from roaming.codec._checksum import internet_checksum
from roaming.errors import DecodeError

PROTOCOL = "igmp"

_MESSAGE = struct.Struct("!BBHI")
_V3_QUERY = struct.Struct("!BBHIBBH")
_V3_REPORT = struct.Struct("!BBHHH")
_RECORD = struct.Struct("!BBHI")
_MESSAGE_LENGTH = _MESSAGE.size
_V3_QUERY_LENGTH = _V3_QUERY.size


class IgmpType(IntEnum):
    """IGMP message types (RFC 3376 section 4, RFC 2236 section 2.1)."""

    MEMBERSHIP_QUERY = 0x11
    V1_MEMBERSHIP_REPORT = 0x12
    V2_MEMBERSHIP_REPORT = 0x16
    LEAVE_GROUP = 0x17
    V3_MEMBERSHIP_REPORT = 0x22


class IgmpRecordType(IntEnum):
    """Group record types of a v3 report (RFC 3376 section 4.2.12)."""

    MODE_IS_INCLUDE = 1
    MODE_IS_EXCLUDE = 2
    CHANGE_TO_INCLUDE_MODE = 3
    CHANGE_TO_EXCLUDE_MODE = 4
    ALLOW_NEW_SOURCES = 5
    BLOCK_OLD_SOURCES = 6


_EIGHT_BYTE_TYPES = frozenset(
    {
        IgmpType.MEMBERSHIP_QUERY,
        IgmpType.V1_MEMBERSHIP_REPORT,
        IgmpType.V2_MEMBERSHIP_REPORT,
        IgmpType.LEAVE_GROUP,
    }
)


@dataclass(frozen=True, slots=True)
class IgmpMessage:
    """
    An 8-byte IGMP message: a v1 or v2 query, a v1 or v2 report or a leave.
    """

    type: int
    """L{IgmpType} value."""
    group: int
    """Group address; 0 in a general query."""
    max_response_time: int = 0
    """In tenths of a second; 0 in v1 messages (RFC 2236 section 2.2)."""
    checksum: int | None = field(default=None, compare=False)
    """Checksum as received; L{build_igmp} computes it when C{None}."""


@dataclass(frozen=True, slots=True)
class IgmpV3Query:
    """A version 3 membership query (RFC 3376 section 4.1)."""

    group: int
    max_response_code: int = 100
    suppress_router_processing: bool = False
    robustness: int = 2
    """Querier's robustness variable (QRV), 0 to 7."""
    query_interval_code: int = 125
    sources: tuple[int, ...] = ()
    checksum: int | None = field(default=None, compare=False)

    type = IgmpType.MEMBERSHIP_QUERY


@dataclass(frozen=True, slots=True)
class IgmpGroupRecord:
    """One group record of a v3 report (RFC 3376 section 4.2.4)."""

    record_type: int
    """L{IgmpRecordType} value."""
    group: int
    sources: tuple[int, ...] = ()
    auxiliary_data: bytes = b""
    """Auxiliary data, a multiple of 4 bytes."""

    @property
    def is_leave(self) -> bool:
        """
        Whether the record stops reception from every source: a change to
        include mode with no sources (RFC 3376 section 5.1).
        """
        return self.record_type == IgmpRecordType.CHANGE_TO_INCLUDE_MODE and not self.sources


@dataclass(frozen=True, slots=True)
class IgmpV3Report:
    """A version 3 membership report (RFC 3376 section 4.2)."""

    records: tuple[IgmpGroupRecord, ...]
    checksum: int | None = field(default=None, compare=False)

    type = IgmpType.V3_MEMBERSHIP_REPORT


IgmpPacket = IgmpMessage | IgmpV3Query | IgmpV3Report


def parse_igmp(message: bytes, *, verify_checksum: bool = True) -> IgmpPacket:
    """
    Parse an IGMP message, the payload of an IPv4 packet with protocol 2.

    A query of exactly 8 bytes is v1 or v2 and one of 12 bytes or more is
    v3 (RFC 3376 section 7.1).  Bytes after the first 8 of a v1/v2 report or
    leave are ignored (RFC 2236 section 2.5), but they count in the checksum.

    @param verify_checksum: raise when the checksum over the message is
        wrong.
    @raise DecodeError: the message is shorter than 8 bytes, its type is
        unknown or the checksum is wrong.  Also raised when a query has 9 to
        11 bytes, a record or source count needs more bytes than are
        present, or bytes follow the last group record of a report.
    """
    size = len(message)
    if size < _MESSAGE_LENGTH:
        raise DecodeError(PROTOCOL, f"message of {size} bytes is shorter than 8")
    igmp_type, code, checksum, group = _MESSAGE.unpack_from(message)
    if verify_checksum and internet_checksum(message) != 0:
        raise DecodeError(PROTOCOL, f"checksum 0x{checksum:04x} is wrong")

    if igmp_type == IgmpType.V3_MEMBERSHIP_REPORT:
        return _parse_v3_report(message, checksum)
    if igmp_type not in _EIGHT_BYTE_TYPES:
        raise DecodeError(PROTOCOL, f"unknown message type 0x{igmp_type:02x}")
    if igmp_type == IgmpType.MEMBERSHIP_QUERY and size != _MESSAGE_LENGTH:
        if size < _V3_QUERY_LENGTH:
            raise DecodeError(
                PROTOCOL, f"query of {size} bytes is neither v2 (8) nor v3 (12 or more)"
            )
        return _parse_v3_query(message, checksum)
    return IgmpMessage(igmp_type, group, code, checksum)


def _parse_v3_query(message: bytes, checksum: int) -> IgmpV3Query:
    _, code, _, group, flags, qqic, count = _V3_QUERY.unpack_from(message)
    sources = _parse_sources(message, _V3_QUERY_LENGTH, count)
    # Bytes after the sources are ignored: RFC 3376 section 4.1.10 leaves
    # room for later extensions of the query.
    return IgmpV3Query(
        group=group,
        max_response_code=code,
        suppress_router_processing=bool(flags & 0x08),
        robustness=flags & 0x07,
        query_interval_code=qqic,
        sources=sources,
        checksum=checksum,
    )


def _parse_v3_report(message: bytes, checksum: int) -> IgmpV3Report:
    _, _, _, _, count = _V3_REPORT.unpack_from(message)
    offset = _V3_REPORT.size
    size = len(message)
    records = []
    for index in range(count):
        if offset + _RECORD.size > size:
            raise DecodeError(PROTOCOL, f"report truncated in group record {index + 1} of {count}")
        record_type, aux_words, source_count, group = _RECORD.unpack_from(message, offset)
        offset += _RECORD.size
        sources = _parse_sources(message, offset, source_count)
        offset += 4 * source_count
        aux_end = offset + 4 * aux_words
        if aux_end > size:
            raise DecodeError(PROTOCOL, f"auxiliary data of group record {index + 1} is truncated")
        records.append(IgmpGroupRecord(record_type, group, sources, message[offset:aux_end]))
        offset = aux_end
    if offset != size:
        raise DecodeError(PROTOCOL, f"{size - offset} bytes follow the last group record")
    return IgmpV3Report(tuple(records), checksum)


def _parse_sources(message: bytes, offset: int, count: int) -> tuple[int, ...]:
    end = offset + 4 * count
    if end > len(message):
        raise DecodeError(
            PROTOCOL, f"{count} sources exceed the {len(message) - offset} bytes present"
        )
    return struct.unpack_from(f"!{count}I", message, offset)


def build_igmp(packet: IgmpPacket) -> bytes:
    """
    Serialise C{packet}, computing the checksum unless C{packet.checksum}
    is set.

    @raise ValueError: a field or a count is out of range.
    """
    try:
        if isinstance(packet, IgmpV3Report):
            data = _build_v3_report(packet)
        elif isinstance(packet, IgmpV3Query):
            data = _build_v3_query(packet)
        else:
            if packet.type not in _EIGHT_BYTE_TYPES:
                raise ValueError(f"invalid IGMP type 0x{packet.type:02x} for an 8-byte message")
            data = _MESSAGE.pack(packet.type, packet.max_response_time, 0, packet.group)
    except struct.error as error:
        raise ValueError(f"invalid IGMP field in {packet!r}: {error}") from None

    checksum = internet_checksum(data) if packet.checksum is None else packet.checksum
    return data[:2] + checksum.to_bytes(2, "big") + data[4:]


def _build_v3_query(query: IgmpV3Query) -> bytes:
    if not 0 <= query.robustness <= 7:
        raise ValueError(f"invalid robustness {query.robustness}: expected 0 to 7")
    flags = int(query.suppress_router_processing) << 3 | query.robustness
    header = _V3_QUERY.pack(
        IgmpType.MEMBERSHIP_QUERY,
        query.max_response_code,
        0,
        query.group,
        flags,
        query.query_interval_code,
        len(query.sources),
    )
    return header + struct.pack(f"!{len(query.sources)}I", *query.sources)


def _build_v3_report(report: IgmpV3Report) -> bytes:
    parts = [_V3_REPORT.pack(IgmpType.V3_MEMBERSHIP_REPORT, 0, 0, 0, len(report.records))]
    for record in report.records:
        if len(record.auxiliary_data) % 4:
            raise ValueError(
                f"auxiliary data of {len(record.auxiliary_data)} bytes is not a multiple of 4"
            )
        parts.append(
            _RECORD.pack(
                record.record_type,
                len(record.auxiliary_data) // 4,
                len(record.sources),
                record.group,
            )
        )
        parts.append(struct.pack(f"!{len(record.sources)}I", *record.sources))
        parts.append(record.auxiliary_data)
    return b"".join(parts)
