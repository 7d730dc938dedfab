# -*- test-case-name: tests.codec.test_udp -*-
"""
Tests for L{roaming.codec.udp}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import IP, UDP, Ether

from roaming.codec.ethernet import parse_ethernet
from roaming.codec.ipv4 import parse_ipv4
from roaming.codec.udp import UdpDatagram, build_udp, parse_udp, udp_checksum
from roaming.errors import DecodeError

from .support import (
    ip_to_int,
    parse_or_decode_error,
    prefixes,
    run_tshark,
    scapy_bytes,
    write_pcap,
)

SOURCE = ip_to_int("192.0.2.10")
DESTINATION = ip_to_int("192.0.2.20")
DATAGRAM = scapy_bytes(
    (IP(src="192.0.2.10", dst="192.0.2.20") / UDP(sport=68, dport=67) / b"odd-length")[UDP]
)
NO_CHECKSUM = scapy_bytes(UDP(sport=1, dport=2, chksum=0) / b"abc")


def test_fields_match_scapy() -> None:
    datagram = parse_udp(DATAGRAM, SOURCE, DESTINATION)
    reference = UDP(DATAGRAM)
    assert datagram.source_port == reference.sport
    assert datagram.destination_port == reference.dport
    assert datagram.checksum == reference.chksum
    assert datagram.payload == bytes(reference.payload)


def test_build_reproduces_scapy() -> None:
    datagram = UdpDatagram(68, 67, b"odd-length")
    assert build_udp(datagram, SOURCE, DESTINATION) == DATAGRAM


def test_build_parsed_by_scapy() -> None:
    data = build_udp(UdpDatagram(5353, 5353, b"query"), SOURCE, DESTINATION)
    packet = IP(scapy_bytes(IP(src="192.0.2.10", dst="192.0.2.20", proto=17) / data))
    checked = packet.copy()
    del checked[UDP].chksum
    assert packet[UDP].sport == 5353
    assert packet[UDP].len == 13
    assert packet[UDP].chksum == IP(scapy_bytes(checked))[UDP].chksum


def test_tshark_verifies_checksum(tmp_path) -> None:
    frame = scapy_bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="192.0.2.10", dst="192.0.2.20")
        / UDP(build_udp(UdpDatagram(40000, 9999, b"x" * 7), SOURCE, DESTINATION))
    )
    pcap = tmp_path / "udp.pcap"
    write_pcap(pcap, [frame])
    [row] = run_tshark(
        pcap,
        "udp.srcport",
        "udp.dstport",
        "udp.length",
        "udp.checksum.status",
        preferences={"udp.check_checksum": "TRUE"},
    )
    datagram = parse_udp(parse_ipv4(parse_ethernet(frame).payload).payload)
    assert int(row[0]) == datagram.source_port
    assert int(row[1]) == datagram.destination_port
    assert int(row[2]) == 8 + len(datagram.payload)
    assert row[3] == "1"  # tshark's PROTO_CHECKSUM_E_GOOD


def test_zero_checksum_not_verified() -> None:
    datagram = parse_udp(NO_CHECKSUM, SOURCE, DESTINATION)
    assert datagram.checksum == 0


def test_computed_zero_sent_as_ffff() -> None:
    # Payload chosen so the one's complement sum is 0xffff: the checksum would be 0.
    base = build_udp(UdpDatagram(0, 0, b"\x00\x00"), 0, 0)
    zero_sum_word = int.from_bytes(base[6:8], "big")
    data = build_udp(UdpDatagram(0, 0, zero_sum_word.to_bytes(2, "big")), 0, 0)
    assert data[6:8] == b"\xff\xff"
    assert udp_checksum(0, 0, data[:6] + b"\x00\x00" + data[8:]) == 0xFFFF


def test_length_bounds_payload() -> None:
    datagram = parse_udp(DATAGRAM + b"trailer", SOURCE, DESTINATION)
    assert datagram.payload == b"odd-length"


def test_bad_checksum_rejected() -> None:
    data = bytearray(DATAGRAM)
    data[-1] ^= 1
    with pytest.raises(DecodeError, match="checksum"):
        parse_udp(bytes(data), SOURCE, DESTINATION)


def test_checksum_skipped_without_addresses() -> None:
    data = bytearray(DATAGRAM)
    data[-1] ^= 1
    assert parse_udp(bytes(data)).payload == b"odd-lengti"


@pytest.mark.parametrize("data", [DATAGRAM, NO_CHECKSUM], ids=["checksum", "no-checksum"])
def test_truncated_rejected(data: bytes) -> None:
    for prefix in prefixes(data):
        with pytest.raises(DecodeError):
            parse_udp(prefix, SOURCE, DESTINATION)


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError, match="length 0"):
        parse_udp(bytes(8))


def test_length_beyond_data_rejected() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        parse_udp(b"\x00\x01\x00\x02\x00\x10\x00\x00" + bytes(4))


def test_build_rejects_port_out_of_range() -> None:
    with pytest.raises(ValueError, match="UDP"):
        build_udp(UdpDatagram(70000, 1, b""), SOURCE, DESTINATION)


addresses = st.integers(0, 2**32 - 1)
datagrams = st.builds(
    UdpDatagram,
    source_port=st.integers(0, 0xFFFF),
    destination_port=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=200),
)


@given(datagrams, addresses, addresses)
def test_round_trip(datagram: UdpDatagram, source: int, destination: int) -> None:
    assert parse_udp(build_udp(datagram, source, destination), source, destination) == datagram


@given(st.binary(max_size=64), addresses, addresses)
def test_random_bytes_raise_only_decode_error(data: bytes, source: int, destination: int) -> None:
    parse_or_decode_error(lambda d: parse_udp(d, source, destination), data)
