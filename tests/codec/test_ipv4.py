# -*- test-case-name: tests.codec.test_ipv4 -*-
"""
Tests for L{roaming.codec.ipv4}.
"""

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ICMP, IP, UDP, Ether, IPOption_NOP, IPOption_Router_Alert

from roaming.codec.ethernet import parse_ethernet
from roaming.codec.ipv4 import (
    IpProtocol,
    Ipv4Flags,
    Ipv4Option,
    Ipv4Packet,
    build_ipv4,
    parse_ipv4,
    parse_ipv4_options,
)
from roaming.errors import DecodeError

from .support import ip_to_int, parse_or_decode_error, prefixes, run_tshark, scapy_bytes, write_pcap

VECTORS = {
    "udp": scapy_bytes(
        IP(src="192.0.2.1", dst="198.51.100.7", ttl=17, id=4242, tos=0xB9)
        / UDP(sport=5, dport=6)
        / b"data"
    ),
    "router-alert": scapy_bytes(
        IP(src="10.0.0.1", dst="224.0.0.22", ttl=1, options=[IPOption_Router_Alert()])
        / (b"\x22" * 8)
    ),
    "nop-options": scapy_bytes(
        IP(src="10.0.0.1", dst="10.0.0.2", options=[IPOption_NOP()] * 8) / ICMP()
    ),
    "first-fragment": scapy_bytes(
        IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", id=7) / UDP() / (b"x" * 32)
    ),
    "last-fragment": scapy_bytes(
        IP(src="10.0.0.1", dst="10.0.0.2", frag=5, id=7, proto=17) / (b"y" * 16)
    ),
    "dont-fragment": scapy_bytes(IP(src="10.0.0.1", dst="10.0.0.2", flags="DF") / ICMP()),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_fields_match_scapy(name: str) -> None:
    packet = parse_ipv4(VECTORS[name])
    reference = IP(VECTORS[name])
    assert packet.source == ip_to_int(reference.src)
    assert packet.destination == ip_to_int(reference.dst)
    assert packet.protocol == reference.proto
    assert packet.ttl == reference.ttl
    assert packet.dscp << 2 | packet.ecn == reference.tos
    assert packet.identification == reference.id
    assert packet.flags == int(reference.flags)
    assert packet.fragment_offset == reference.frag
    assert packet.header_length == reference.ihl * 4
    assert packet.checksum == reference.chksum
    assert packet.payload == bytes(reference.payload)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_build_reproduces_scapy(name: str) -> None:
    assert build_ipv4(parse_ipv4(VECTORS[name])) == VECTORS[name]


def test_build_parsed_by_scapy() -> None:
    packet = Ipv4Packet(
        source=0x0A000001,
        destination=0xE0000016,
        protocol=IpProtocol.IGMP,
        payload=b"\x22" + bytes(7),
        ttl=1,
        dscp=46,
        ecn=1,
        identification=99,
        flags=Ipv4Flags.DONT_FRAGMENT,
        options=b"\x94\x04\x00\x00",
    )
    data = build_ipv4(packet)
    reference = IP(data)
    assert reference.src == "10.0.0.1"
    assert reference.dst == "224.0.0.22"
    assert reference.ihl == 6
    assert reference.tos == 46 << 2 | 1
    assert reference.flags == "DF"
    assert reference.len == len(data)
    assert reference.options[0].option == 20
    recomputed = IP(data)
    del recomputed.chksum
    assert reference.chksum == IP(scapy_bytes(recomputed)).chksum


def test_checksum_matches_scapy() -> None:
    packet = Ipv4Packet(0x0A000001, 0x0A000002, IpProtocol.UDP, b"", ttl=33, identification=5)
    data = build_ipv4(packet)
    reference = IP(scapy_bytes(IP(src="10.0.0.1", dst="10.0.0.2", ttl=33, id=5, proto=17)))
    assert int.from_bytes(data[10:12], "big") == reference.chksum


def test_tshark_reads_fields(tmp_path) -> None:
    names = sorted(VECTORS)
    frames = [
        scapy_bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(VECTORS[name]))
        for name in names
    ]
    pcap = tmp_path / "ipv4.pcap"
    write_pcap(pcap, frames)
    fields = ["ip.src", "ip.dst", "ip.hdr_len", "ip.len", "ip.flags.mf", "ip.frag_offset"]
    rows = run_tshark(
        pcap, *fields, "ip.checksum.status", preferences={"ip.check_checksum": "TRUE"}
    )
    for frame, row in zip(frames, rows, strict=True):
        packet = parse_ipv4(parse_ethernet(frame).payload)
        assert ip_to_int(row[0]) == packet.source
        assert ip_to_int(row[1]) == packet.destination
        assert int(row[2]) == packet.header_length
        assert int(row[3]) == packet.header_length + len(packet.payload)
        assert row[4] == ("1" if packet.flags & Ipv4Flags.MORE_FRAGMENTS else "0")
        assert int(row[5]) == packet.fragment_offset  # in 8-byte units
        assert row[6] == "1"  # tshark's PROTO_CHECKSUM_E_GOOD


def test_ethernet_padding_not_payload() -> None:
    frame = scapy_bytes(Ether(src="02:00:00:00:00:01") / IP(VECTORS["udp"]))
    padded = frame + bytes(60 - len(frame))
    packet = parse_ipv4(parse_ethernet(padded).payload)
    assert packet.payload == bytes(IP(VECTORS["udp"]).payload)


def test_options_parsed() -> None:
    packet = parse_ipv4(VECTORS["router-alert"])
    assert parse_ipv4_options(packet.options) == (Ipv4Option(148, b"\x00\x00"),)


def test_fragments_flagged() -> None:
    assert parse_ipv4(VECTORS["first-fragment"]).is_fragment
    assert parse_ipv4(VECTORS["last-fragment"]).is_fragment
    assert not parse_ipv4(VECTORS["dont-fragment"]).is_fragment


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_rejected(name: str) -> None:
    for prefix in prefixes(VECTORS[name]):
        with pytest.raises(DecodeError):
            parse_ipv4(prefix)


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError, match="version"):
        parse_ipv4(bytes(40))


def test_bad_checksum_rejected() -> None:
    data = bytearray(VECTORS["udp"])
    data[10] ^= 0xFF
    with pytest.raises(DecodeError, match="checksum"):
        parse_ipv4(bytes(data))


def test_bad_checksum_kept_when_not_verified() -> None:
    data = bytearray(VECTORS["udp"])
    data[10] ^= 0xFF
    packet = parse_ipv4(bytes(data), verify_checksum=False)
    assert packet.checksum == int.from_bytes(data[10:12], "big")


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [(0, 0x65, "version"), (0, 0x44, "IHL"), (2, 0, "total length"), (0, 0x4F, "header of 60")],
)
def test_inconsistent_header_rejected(offset: int, value: int, reason: str) -> None:
    data = bytearray(VECTORS["udp"])
    data[offset] = value
    if offset == 2:
        data[3] = 19
    with pytest.raises(DecodeError, match=reason):
        parse_ipv4(bytes(data), verify_checksum=False)


@pytest.mark.parametrize(
    "options",
    [b"\x07", b"\x07\x01\x00\x00", b"\x07\x09\x00\x00"],
    ids=["no-length", "length-1", "past-end"],
)
def test_malformed_options_rejected(options: bytes) -> None:
    with pytest.raises(DecodeError, match="option 7"):
        parse_ipv4_options(options)


def test_options_stop_at_end() -> None:
    assert parse_ipv4_options(b"\x01\x00\xff\xff") == (Ipv4Option(1), Ipv4Option(0))


def test_build_rejects_unaligned_options() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        build_ipv4(Ipv4Packet(1, 2, 17, b"", options=b"\x01"))


def test_build_rejects_oversized() -> None:
    with pytest.raises(ValueError, match="65535"):
        build_ipv4(Ipv4Packet(1, 2, 17, bytes(65516)))


ipv4_packets = st.builds(
    Ipv4Packet,
    source=st.integers(0, 2**32 - 1),
    destination=st.integers(0, 2**32 - 1),
    protocol=st.integers(0, 255),
    payload=st.binary(max_size=100),
    ttl=st.integers(0, 255),
    dscp=st.integers(0, 63),
    ecn=st.integers(0, 3),
    identification=st.integers(0, 0xFFFF),
    flags=st.integers(0, 7),
    fragment_offset=st.integers(0, 0x1FFF),
    options=st.lists(st.sampled_from([b"\x01\x01\x01\x01", b"\x94\x04\x00\x00"]), max_size=10).map(
        b"".join
    ),
)


@given(ipv4_packets)
def test_round_trip(packet: Ipv4Packet) -> None:
    assert parse_ipv4(build_ipv4(packet)) == packet


@given(st.binary(max_size=100))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_ipv4, data)


@given(st.binary(max_size=80))
def test_random_after_version_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(lambda d: parse_ipv4(d, verify_checksum=False), b"\x4f" + data)


@given(st.binary(max_size=40))
def test_random_options_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_ipv4_options, data)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_allowed_keeps_header(name: str) -> None:
    whole = parse_ipv4(VECTORS[name])
    for prefix in prefixes(VECTORS[name]):
        packet = parse_or_decode_error(lambda d: parse_ipv4(d, allow_truncated=True), prefix)
        if len(prefix) < whole.header_length:
            assert packet is None
            continue
        assert packet.source == whole.source
        assert whole.payload.startswith(packet.payload)


@given(st.binary(max_size=80))
def test_random_truncated_raise_only_decode_error(data: bytes) -> None:
    parse = functools.partial(parse_ipv4, verify_checksum=False, allow_truncated=True)
    parse_or_decode_error(parse, b"\x46" + data)
