# -*- test-case-name: tests.codec.test_icmp -*-
"""
Tests for L{roaming.codec.icmp}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ICMP, IP, UDP, Ether
from scapy.layers.inet import IPerror

from roaming.codec.ethernet import parse_ethernet
from roaming.codec.icmp import (
    IcmpDestinationUnreachable,
    IcmpEcho,
    IcmpMessage,
    IcmpTimeExceeded,
    IcmpType,
    UnreachableCode,
    build_icmp,
    parse_icmp,
)
from roaming.codec.ipv4 import parse_ipv4
from roaming.errors import DecodeError

from .support import parse_or_decode_error, prefixes, run_tshark, scapy_bytes, write_pcap

ORIGINAL = scapy_bytes(IP(src="10.0.0.1", dst="192.0.2.9", flags="DF") / UDP(sport=1, dport=2))
VECTORS = {
    "echo-request": scapy_bytes(ICMP(type=8, id=0x1234, seq=7) / b"ping-data"),
    "echo-reply": scapy_bytes(ICMP(type=0, id=0x1234, seq=7) / b"ping-data"),
    "fragmentation-needed": scapy_bytes(ICMP(type=3, code=4, nexthopmtu=1400) / ORIGINAL),
    "port-unreachable": scapy_bytes(ICMP(type=3, code=3) / ORIGINAL),
    "ttl-exceeded": scapy_bytes(ICMP(type=11, code=0) / ORIGINAL),
    "redirect": scapy_bytes(ICMP(type=5, code=1, gw="10.0.0.254") / ORIGINAL),
}


@pytest.mark.parametrize("name", ["echo-request", "echo-reply"])
def test_echo_matches_scapy(name: str) -> None:
    message = parse_icmp(VECTORS[name])
    reference = ICMP(VECTORS[name])
    assert isinstance(message, IcmpEcho)
    assert message.type == reference.type
    assert message.identifier == reference.id
    assert message.sequence == reference.seq
    assert message.data == bytes(reference.payload)
    assert message.checksum == reference.chksum


def test_fragmentation_needed_mtu() -> None:
    message = parse_icmp(VECTORS["fragmentation-needed"])
    reference = ICMP(VECTORS["fragmentation-needed"])
    assert isinstance(message, IcmpDestinationUnreachable)
    assert message.code == UnreachableCode.FRAGMENTATION_NEEDED
    assert message.next_hop_mtu == reference.nexthopmtu == 1400
    assert message.original == ORIGINAL


def test_port_unreachable_has_no_mtu() -> None:
    message = parse_icmp(VECTORS["port-unreachable"])
    assert isinstance(message, IcmpDestinationUnreachable)
    assert message.code == UnreachableCode.PORT
    assert message.next_hop_mtu == 0


def test_time_exceeded() -> None:
    message = parse_icmp(VECTORS["ttl-exceeded"])
    assert isinstance(message, IcmpTimeExceeded)
    assert message.code == 0
    assert parse_ipv4(message.original).destination == 0xC0000209


LARGE_DATAGRAM = scapy_bytes(IP(src="10.0.0.1", dst="192.0.2.9") / UDP() / bytes(1400))


def test_quoted_header_parsed_truncated() -> None:
    # RFC 792: the error quotes the IP header and the first 8 bytes of data.
    data = scapy_bytes(ICMP(type=3, code=4, nexthopmtu=576) / LARGE_DATAGRAM[:28])
    message = parse_icmp(data)
    original = parse_ipv4(message.original, allow_truncated=True)
    assert original.destination == 0xC0000209
    assert original.protocol == IP(LARGE_DATAGRAM).proto
    assert original.payload == LARGE_DATAGRAM[20:28]


def test_quoted_header_rejected_without_flag() -> None:
    message = parse_icmp(scapy_bytes(ICMP(type=11) / LARGE_DATAGRAM[:28]))
    with pytest.raises(DecodeError, match="total length"):
        parse_ipv4(message.original)


def test_other_type_kept_raw() -> None:
    message = parse_icmp(VECTORS["redirect"])
    assert message == IcmpMessage(IcmpType.REDIRECT, 1, bytes([10, 0, 0, 254]), ORIGINAL)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_build_reproduces_scapy(name: str) -> None:
    assert build_icmp(parse_icmp(VECTORS[name])) == VECTORS[name]


def test_fragmentation_needed_built_parsed_by_scapy() -> None:
    data = build_icmp(IcmpDestinationUnreachable(4, ORIGINAL, next_hop_mtu=1476))
    reference = ICMP(data)
    checked = reference.copy()
    checked.chksum = None
    assert reference.type == 3
    assert reference.code == 4
    assert reference.nexthopmtu == 1476
    assert reference.chksum == ICMP(scapy_bytes(checked)).chksum
    assert reference[IPerror].dst == "192.0.2.9"


def test_echo_built_parsed_by_scapy() -> None:
    reference = ICMP(build_icmp(IcmpEcho(IcmpType.ECHO_REQUEST, 99, 3, b"abc")))
    assert reference.type == 8
    assert reference.id == 99
    assert reference.seq == 3
    assert bytes(reference.payload) == b"abc"


def test_tshark_reads_fields(tmp_path) -> None:
    names = sorted(VECTORS)
    frames = [
        scapy_bytes(
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="10.0.0.254", dst="10.0.0.1")
            / ICMP(VECTORS[name])
        )
        for name in names
    ]
    pcap = tmp_path / "icmp.pcap"
    write_pcap(pcap, frames)
    rows = run_tshark(pcap, "icmp.type", "icmp.code", "icmp.mtu", "icmp.checksum.status")
    for frame, row in zip(frames, rows, strict=True):
        message = parse_icmp(parse_ipv4(parse_ethernet(frame).payload).payload)
        assert int(row[0]) == message.type
        if isinstance(message, IcmpDestinationUnreachable) and message.next_hop_mtu:
            assert int(row[2]) == message.next_hop_mtu
        assert row[3].split(",")[0] == "1"  # tshark's PROTO_CHECKSUM_E_GOOD


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_rejected(name: str) -> None:
    for prefix in prefixes(VECTORS[name]):
        with pytest.raises(DecodeError):
            parse_icmp(prefix)


def test_truncated_unverified_parses_prefix() -> None:
    data = VECTORS["echo-request"]
    for length in range(8, len(data)):
        message = parse_icmp(data[:length], verify_checksum=False)
        assert message.data == data[8:length]


def test_short_rejected_without_checksum() -> None:
    with pytest.raises(DecodeError, match="shorter than the 8-byte header"):
        parse_icmp(VECTORS["echo-request"][:7], verify_checksum=False)


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError, match="checksum"):
        parse_icmp(bytes(64))


def test_mtu_with_other_code_rejected() -> None:
    with pytest.raises(ValueError, match="only valid with code 4"):
        build_icmp(IcmpDestinationUnreachable(UnreachableCode.HOST, b"", next_hop_mtu=1400))


def test_rest_of_header_length_checked() -> None:
    with pytest.raises(ValueError, match="exactly 4 bytes"):
        build_icmp(IcmpMessage(13, 0, b"\x00"))


words = st.integers(0, 0xFFFF)
echoes = st.builds(
    IcmpEcho,
    type=st.sampled_from([IcmpType.ECHO_REQUEST, IcmpType.ECHO_REPLY]),
    identifier=words,
    sequence=words,
    data=st.binary(max_size=64),
)
unreachables = st.one_of(
    st.builds(IcmpDestinationUnreachable, st.just(4), st.binary(max_size=64), words),
    st.builds(
        IcmpDestinationUnreachable,
        st.integers(0, 255).filter(lambda code: code != 4),
        st.binary(max_size=64),
    ),
)
time_exceeded = st.builds(IcmpTimeExceeded, st.integers(0, 255), st.binary(max_size=64))
others = st.builds(
    IcmpMessage,
    st.integers(0, 255).filter(lambda t: t not in (0, 3, 8, 11)),
    st.integers(0, 255),
    st.binary(min_size=4, max_size=4),
    st.binary(max_size=64),
)


@given(st.one_of(echoes, unreachables, time_exceeded, others))
def test_round_trip(packet: object) -> None:
    assert parse_icmp(build_icmp(packet)) == packet


@given(st.binary(max_size=80))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(lambda d: parse_icmp(d, verify_checksum=False), data)
