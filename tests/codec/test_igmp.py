# -*- test-case-name: tests.codec.test_igmp -*-
"""
Tests for L{roaming.codec.igmp}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, Ether
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group

from roaming.codec.ethernet import parse_ethernet
from roaming.codec.igmp import (
    IgmpGroupRecord,
    IgmpMessage,
    IgmpRecordType,
    IgmpType,
    IgmpV3Query,
    IgmpV3Report,
    build_igmp,
    parse_igmp,
)
from roaming.codec.ipv4 import parse_ipv4
from roaming.errors import DecodeError

from .support import (
    ip_to_int,
    parse_or_decode_error,
    prefixes,
    run_tshark,
    scapy_bytes,
    write_pcap,
)

EIGHT_BYTE_VECTORS = {
    "v1-report": scapy_bytes(IGMP(type=0x12, gaddr="239.1.2.3")),
    "v2-report": scapy_bytes(IGMP(type=0x16, gaddr="239.1.2.3")),
    "v2-leave": scapy_bytes(IGMP(type=0x17, gaddr="239.1.2.3")),
    "v2-general-query": scapy_bytes(IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0")),
    "v2-group-query": scapy_bytes(IGMP(type=0x11, mrcode=10, gaddr="239.1.2.3")),
}
V3_QUERY = scapy_bytes(
    IGMPv3_MQ(
        mrcode=100, gaddr="239.1.2.3", s=1, qrv=2, qqic=125, srcaddrs=["10.0.0.1", "10.0.0.2"]
    )
)
V3_REPORT = scapy_bytes(
    IGMPv3_MR(
        records=[
            IGMPv3_MR_Group(rtype=4, maddr="239.1.2.3"),
            IGMPv3_MR_Group(rtype=1, maddr="239.4.5.6", srcaddrs=["10.0.0.7", "10.0.0.8"]),
            IGMPv3_MR_Group(rtype=3, maddr="239.9.9.9"),
        ]
    )
)
VECTORS = {**EIGHT_BYTE_VECTORS, "v3-query": V3_QUERY, "v3-report": V3_REPORT}


@pytest.mark.parametrize("name", sorted(EIGHT_BYTE_VECTORS))
def test_eight_byte_fields_match_scapy(name: str) -> None:
    message = parse_igmp(EIGHT_BYTE_VECTORS[name])
    reference = IGMP(EIGHT_BYTE_VECTORS[name])
    assert isinstance(message, IgmpMessage)
    assert message.type == reference.type
    assert message.group == ip_to_int(reference.gaddr)
    assert message.max_response_time == reference.mrcode
    assert message.checksum == reference.chksum


def test_v3_query_matches_scapy() -> None:
    query = parse_igmp(V3_QUERY)
    reference = IGMP(V3_QUERY)
    assert isinstance(reference, IGMPv3_MQ)
    assert isinstance(query, IgmpV3Query)
    assert query.group == ip_to_int(reference.gaddr)
    assert query.max_response_code == reference.mrcode
    assert query.suppress_router_processing == bool(reference.s)
    assert query.robustness == reference.qrv
    assert query.query_interval_code == reference.qqic
    assert query.sources == tuple(ip_to_int(a) for a in reference.srcaddrs)


def test_v3_report_matches_scapy() -> None:
    report = parse_igmp(V3_REPORT)
    reference = IGMP(V3_REPORT)
    assert isinstance(reference, IGMPv3_MR)
    assert isinstance(report, IgmpV3Report)
    assert len(report.records) == reference.numgrp
    for record, scapy_record in zip(report.records, reference.records, strict=True):
        assert record.record_type == scapy_record.rtype
        assert record.group == ip_to_int(scapy_record.maddr)
        assert record.sources == tuple(ip_to_int(a) for a in scapy_record.srcaddrs)


def test_v3_leave_record() -> None:
    report = parse_igmp(V3_REPORT)
    assert [record.is_leave for record in report.records] == [False, False, True]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_build_reproduces_scapy(name: str) -> None:
    assert build_igmp(parse_igmp(VECTORS[name])) == VECTORS[name]


def test_v3_report_built_parsed_by_scapy() -> None:
    report = IgmpV3Report(
        (
            IgmpGroupRecord(IgmpRecordType.CHANGE_TO_EXCLUDE_MODE, ip_to_int("239.0.0.1")),
            IgmpGroupRecord(
                IgmpRecordType.ALLOW_NEW_SOURCES,
                ip_to_int("232.1.1.1"),
                (ip_to_int("192.0.2.1"),),
                b"\x00\x00\x00\x01",
            ),
        )
    )
    data = build_igmp(report)
    reference = IGMP(data)
    checked = reference.copy()
    checked.chksum = None
    assert isinstance(reference, IGMPv3_MR)
    assert reference.chksum == IGMP(scapy_bytes(checked)).chksum
    assert [r.rtype for r in reference.records] == [4, 5]
    assert reference.records[1].srcaddrs == ["192.0.2.1"]
    assert reference.records[1].auxdlen == 1


def test_leave_built_parsed_by_scapy() -> None:
    data = build_igmp(IgmpMessage(IgmpType.LEAVE_GROUP, ip_to_int("239.7.7.7")))
    reference = IGMP(data)
    assert reference.type == 0x17
    assert reference.gaddr == "239.7.7.7"
    assert data == scapy_bytes(IGMP(type=0x17, gaddr="239.7.7.7"))


def test_tshark_reads_fields(tmp_path) -> None:
    names = sorted(VECTORS)
    frames = [
        scapy_bytes(
            Ether(src="02:00:00:00:00:01", dst="01:00:5e:00:00:16")
            / IP(src="10.0.0.1", dst="224.0.0.22", ttl=1, proto=2)
            / IGMP(VECTORS[name])
        )
        for name in names
    ]
    pcap = tmp_path / "igmp.pcap"
    write_pcap(pcap, frames)
    rows = run_tshark(
        pcap,
        "igmp.type",
        "igmp.maddr",
        "igmp.num_grp_recs",
        "igmp.checksum.status",
    )
    for frame, row in zip(frames, rows, strict=True):
        packet = parse_igmp(parse_ipv4(parse_ethernet(frame).payload).payload)
        assert int(row[0], 16) == packet.type
        if isinstance(packet, IgmpV3Report):
            assert int(row[2]) == len(packet.records)
            groups = [ip_to_int(a) for a in row[1].split(",")]
            assert groups == [record.group for record in packet.records]
        else:
            assert ip_to_int(row[1]) == packet.group
        assert row[3] == "1"  # tshark's PROTO_CHECKSUM_E_GOOD


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_rejected(name: str) -> None:
    for prefix in prefixes(VECTORS[name]):
        result = parse_or_decode_error(parse_igmp, prefix)
        assert result is None


def test_trailing_bytes_after_report_counted_in_checksum() -> None:
    data = EIGHT_BYTE_VECTORS["v2-report"] + b"\x00\x00"
    assert parse_igmp(data) == parse_igmp(EIGHT_BYTE_VECTORS["v2-report"])


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError):
        parse_igmp(bytes(8))


def test_unknown_type_rejected() -> None:
    with pytest.raises(DecodeError, match="unknown message type 0x13"):
        parse_igmp(b"\x13" + bytes(7), verify_checksum=False)


def test_bad_checksum_rejected() -> None:
    data = bytearray(EIGHT_BYTE_VECTORS["v2-report"])
    data[7] ^= 1
    with pytest.raises(DecodeError, match="checksum"):
        parse_igmp(bytes(data))


@pytest.mark.parametrize("length", [9, 10, 11])
def test_query_of_nine_to_eleven_bytes_rejected(length: int) -> None:
    data = EIGHT_BYTE_VECTORS["v2-general-query"] + bytes(length - 8)
    with pytest.raises(DecodeError, match="neither v2"):
        parse_igmp(data)


def test_bytes_after_last_record_rejected() -> None:
    report = build_igmp(IgmpV3Report((), checksum=None))
    with pytest.raises(DecodeError, match="follow the last group record"):
        parse_igmp(report + bytes(4), verify_checksum=False)


def test_source_count_beyond_data_rejected() -> None:
    data = bytearray(V3_QUERY)
    data[11] = 3
    with pytest.raises(DecodeError, match="3 sources"):
        parse_igmp(bytes(data), verify_checksum=False)


addresses = st.integers(0, 2**32 - 1)
eight_byte_messages = st.builds(
    IgmpMessage,
    type=st.sampled_from(
        [
            IgmpType.V1_MEMBERSHIP_REPORT,
            IgmpType.V2_MEMBERSHIP_REPORT,
            IgmpType.LEAVE_GROUP,
            IgmpType.MEMBERSHIP_QUERY,
        ]
    ),
    group=addresses,
    max_response_time=st.integers(0, 255),
)
v3_queries = st.builds(
    IgmpV3Query,
    group=addresses,
    max_response_code=st.integers(0, 255),
    suppress_router_processing=st.booleans(),
    robustness=st.integers(0, 7),
    query_interval_code=st.integers(0, 255),
    sources=st.lists(addresses, max_size=5).map(tuple),
)
group_records = st.builds(
    IgmpGroupRecord,
    record_type=st.integers(0, 255),
    group=addresses,
    sources=st.lists(addresses, max_size=5).map(tuple),
    auxiliary_data=st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4]),
)
v3_reports = st.builds(IgmpV3Report, st.lists(group_records, max_size=5).map(tuple))


@given(st.one_of(eight_byte_messages, v3_queries, v3_reports))
def test_round_trip(packet: IgmpMessage | IgmpV3Query | IgmpV3Report) -> None:
    assert parse_igmp(build_igmp(packet)) == packet


@given(st.binary(max_size=80))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(lambda d: parse_igmp(d, verify_checksum=False), data)


@given(st.sampled_from([0x11, 0x22]), st.binary(max_size=80))
def test_random_v3_bodies_raise_only_decode_error(igmp_type: int, body: bytes) -> None:
    parse_or_decode_error(lambda d: parse_igmp(d, verify_checksum=False), bytes([igmp_type]) + body)
