# -*- test-case-name: tests.codec.test_arp -*-
"""
Tests for L{roaming.codec.arp}.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import ARP, Ether

from roaming.codec.arp import ARP_LENGTH, ArpOperation, ArpPacket, build_arp, parse_arp
from roaming.codec.ethernet import parse_ethernet
from roaming.errors import DecodeError

from .support import (
    ip_to_int,
    mac,
    parse_or_decode_error,
    prefixes,
    run_tshark,
    scapy_bytes,
    write_pcap,
)

REQUEST = scapy_bytes(
    ARP(
        op=1, hwsrc="02:00:00:00:00:01", psrc="10.1.0.5", hwdst="00:00:00:00:00:00", pdst="10.1.0.1"
    )
)
REPLY = scapy_bytes(
    ARP(
        op=2, hwsrc="02:00:00:00:00:fe", psrc="10.1.0.1", hwdst="02:00:00:00:00:01", pdst="10.1.0.5"
    )
)


@pytest.mark.parametrize("data", [REQUEST, REPLY], ids=["request", "reply"])
def test_fields_match_scapy(data: bytes) -> None:
    packet = parse_arp(data)
    reference = ARP(data)
    assert packet.operation == reference.op
    assert packet.sender_mac == mac(reference.hwsrc)
    assert packet.sender_ip == ip_to_int(reference.psrc)
    assert packet.target_mac == mac(reference.hwdst)
    assert packet.target_ip == ip_to_int(reference.pdst)


@pytest.mark.parametrize("data", [REQUEST, REPLY], ids=["request", "reply"])
def test_build_reproduces_scapy(data: bytes) -> None:
    assert build_arp(parse_arp(data)) == data


def test_build_parsed_by_scapy() -> None:
    packet = ArpPacket(
        ArpOperation.REPLY, mac("02:aa:bb:cc:dd:ee"), 0x0A000001, bytes(6), 0x0A0000FE
    )
    reference = ARP(build_arp(packet))
    assert reference.op == 2
    assert reference.hwsrc == "02:aa:bb:cc:dd:ee"
    assert reference.psrc == "10.0.0.1"
    assert reference.pdst == "10.0.0.254"


def test_tshark_reads_fields(tmp_path) -> None:
    frame = scapy_bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(REQUEST))
    pcap = tmp_path / "arp.pcap"
    write_pcap(pcap, [frame])
    [row] = run_tshark(
        pcap, "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4"
    )
    packet = parse_arp(parse_ethernet(frame).payload)
    assert int(row[0]) == packet.operation
    assert row[1] == "02:00:00:00:00:01"
    assert ip_to_int(row[2]) == packet.sender_ip
    assert ip_to_int(row[3]) == packet.target_ip


def test_padding_ignored() -> None:
    assert parse_arp(REQUEST + bytes(18)) == parse_arp(REQUEST)


def test_gratuitous() -> None:
    packet = parse_arp(
        scapy_bytes(ARP(psrc="10.1.0.5", pdst="10.1.0.5", hwsrc="02:00:00:00:00:01"))
    )
    assert packet.is_gratuitous


@pytest.mark.parametrize("data", [REQUEST, REPLY], ids=["request", "reply"])
def test_truncated_rejected(data: bytes) -> None:
    for prefix in prefixes(data):
        with pytest.raises(DecodeError):
            parse_arp(prefix)


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError):
        parse_arp(bytes(ARP_LENGTH))


@pytest.mark.parametrize(
    "reference",
    [ARP(hwtype=6), ARP(ptype=0x86DD), ARP(hwlen=8), ARP(op=3)],
    ids=["hardware-type", "protocol-type", "hardware-length", "operation"],
)
def test_unsupported_rejected(reference: ARP) -> None:
    with pytest.raises(DecodeError):
        parse_arp(scapy_bytes(reference) + bytes(8))


def test_build_rejects_short_mac() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        build_arp(ArpPacket(ArpOperation.REQUEST, b"\x02", 0, bytes(6), 0))


arp_packets = st.builds(
    ArpPacket,
    operation=st.sampled_from(ArpOperation),
    sender_mac=st.binary(min_size=6, max_size=6),
    sender_ip=st.integers(0, 2**32 - 1),
    target_mac=st.binary(min_size=6, max_size=6),
    target_ip=st.integers(0, 2**32 - 1),
)


@given(arp_packets)
def test_round_trip(packet: ArpPacket) -> None:
    assert parse_arp(build_arp(packet)) == packet


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_arp, data)


@given(st.binary(min_size=20, max_size=20))
def test_any_addresses_parse(addresses: bytes) -> None:
    packet = parse_arp(b"\x00\x01\x08\x00\x06\x04\x00\x01" + addresses)
    assert packet.sender_mac == addresses[:6]
