# -*- test-case-name: tests.codec.test_ipv6 -*-
"""
Tests for L{roaming.codec.ipv6}.
"""

import dataclasses
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import (
    UDP,
    Ether,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH

from roaming.codec.ethernet import parse_ethernet
from roaming.codec.ipv6 import (
    MAX_EXTENSION_HEADERS,
    Icmpv6Message,
    Ipv6Packet,
    NdpType,
    build_icmpv6,
    build_ipv6,
    parse_icmpv6,
    parse_ipv6,
    walk_extension_headers,
)
from roaming.errors import DecodeError

from .support import parse_or_decode_error, prefixes, run_tshark, scapy_bytes, write_pcap

HOST = "2001:db8::5"
ROUTER = "fe80::1"
SOLICITED = "ff02::1:ff00:5"


def v6(text: str) -> bytes:
    """Return the 16 bytes of an IPv6 address."""
    return ipaddress.IPv6Address(text).packed


VECTORS = {
    "neighbor-solicitation": scapy_bytes(
        IPv6(src=HOST, dst=SOLICITED, hlim=255) / ICMPv6ND_NS(tgt=HOST)
    ),
    "neighbor-advertisement": scapy_bytes(
        IPv6(src=HOST, dst=ROUTER, hlim=255) / ICMPv6ND_NA(tgt=HOST)
    ),
    "router-solicitation": scapy_bytes(IPv6(src=HOST, dst="ff02::2", hlim=255) / ICMPv6ND_RS()),
    "router-advertisement": scapy_bytes(IPv6(src=ROUTER, dst="ff02::1", hlim=255) / ICMPv6ND_RA()),
    "redirect": scapy_bytes(
        IPv6(src=ROUTER, dst=HOST, hlim=255) / ICMPv6ND_Redirect(tgt=ROUTER, dst=HOST)
    ),
    "mld-hop-by-hop": scapy_bytes(
        IPv6(src=HOST, dst="ff02::16", tc=0xB8, fl=0x12345)
        / IPv6ExtHdrHopByHop()
        / ICMPv6EchoRequest()
    ),
    "routing-destopt-udp": scapy_bytes(
        IPv6(src=HOST, dst=ROUTER)
        / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=1, dport=2)
        / b"data"
    ),
    "first-fragment": scapy_bytes(
        IPv6(src=HOST, dst=ROUTER)
        / IPv6ExtHdrFragment(m=1, id=7)
        / UDP(sport=1, dport=2)
        / (b"x" * 16)
    ),
    "later-fragment": scapy_bytes(
        IPv6(src=HOST, dst=ROUTER) / IPv6ExtHdrFragment(offset=3, id=7, nh=17) / (b"x" * 16)
    ),
    "authentication": scapy_bytes(
        IPv6(src=HOST, dst=ROUTER)
        / AH(nh=58, payloadlen=4, spi=1, icv=bytes(12))
        / ICMPv6ND_NS(tgt=HOST)
    ),
}
NDP_TYPES = {
    "neighbor-solicitation": NdpType.NEIGHBOR_SOLICITATION,
    "neighbor-advertisement": NdpType.NEIGHBOR_ADVERTISEMENT,
    "router-solicitation": NdpType.ROUTER_SOLICITATION,
    "router-advertisement": NdpType.ROUTER_ADVERTISEMENT,
    "redirect": NdpType.REDIRECT,
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_header_matches_scapy(name: str) -> None:
    packet = parse_ipv6(VECTORS[name])
    reference = IPv6(VECTORS[name])
    assert packet.source == v6(reference.src)
    assert packet.destination == v6(reference.dst)
    assert packet.next_header == reference.nh
    assert packet.hop_limit == reference.hlim
    assert packet.traffic_class == reference.tc
    assert packet.flow_label == reference.fl
    assert len(packet.payload) == reference.plen


@pytest.mark.parametrize("name", sorted(NDP_TYPES))
def test_ndp_type_matches_scapy(name: str) -> None:
    packet = parse_ipv6(VECTORS[name])
    chain = walk_extension_headers(packet)
    message = parse_icmpv6(chain.upper_layer, packet.source, packet.destination)
    assert chain.protocol == 58
    assert message.type == IPv6(VECTORS[name]).payload.type
    assert message.ndp_type == NDP_TYPES[name]


def test_echo_is_not_ndp() -> None:
    chain = walk_extension_headers(parse_ipv6(VECTORS["mld-hop-by-hop"]))
    assert chain.extension_headers == (0,)
    assert parse_icmpv6(chain.upper_layer).ndp_type is None


def test_routing_and_destination_options() -> None:
    chain = walk_extension_headers(parse_ipv6(VECTORS["routing-destopt-udp"]))
    assert chain.extension_headers == (43, 60)
    assert chain.protocol == 17
    assert chain.upper_layer == bytes(IPv6(VECTORS["routing-destopt-udp"])[UDP])


def test_first_fragment_reaches_upper_layer() -> None:
    chain = walk_extension_headers(parse_ipv6(VECTORS["first-fragment"]))
    assert chain.extension_headers == (44,)
    assert chain.protocol == 17
    assert chain.is_fragment
    assert chain.fragment_offset == 0


def test_later_fragment_stops_walk() -> None:
    chain = walk_extension_headers(parse_ipv6(VECTORS["later-fragment"]))
    assert chain.fragment_offset == 3
    assert chain.is_fragment
    assert chain.upper_layer == b"x" * 16


def test_authentication_header_length() -> None:
    chain = walk_extension_headers(parse_ipv6(VECTORS["authentication"]))
    assert chain.extension_headers == (51,)
    assert parse_icmpv6(chain.upper_layer).ndp_type == NdpType.NEIGHBOR_SOLICITATION


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_build_reproduces_scapy(name: str) -> None:
    assert build_ipv6(parse_ipv6(VECTORS[name])) == VECTORS[name]


def test_icmpv6_checksum_matches_scapy() -> None:
    packet = parse_ipv6(VECTORS["neighbor-solicitation"])
    message = parse_icmpv6(packet.payload)
    rebuilt = build_icmpv6(
        Icmpv6Message(message.type, message.code, message.body), packet.source, packet.destination
    )
    assert rebuilt == packet.payload


def test_build_parsed_by_scapy() -> None:
    message = Icmpv6Message(NdpType.ROUTER_SOLICITATION, 0, bytes(4))
    payload = build_icmpv6(message, v6(HOST), v6("ff02::2"))
    data = build_ipv6(Ipv6Packet(v6(HOST), v6("ff02::2"), 58, payload, hop_limit=255, flow_label=9))
    reference = IPv6(data)
    checked = reference.copy()
    checked.payload.cksum = None
    assert reference.src == HOST
    assert reference.hlim == 255
    assert reference.fl == 9
    assert isinstance(reference.payload, ICMPv6ND_RS)
    assert reference.payload.cksum == IPv6(scapy_bytes(checked)).payload.cksum


def test_tshark_reads_fields(tmp_path) -> None:
    names = sorted(VECTORS)
    frames = [
        scapy_bytes(Ether(src="02:00:00:00:00:01", dst="33:33:00:00:00:01") / IPv6(VECTORS[name]))
        for name in names
    ]
    pcap = tmp_path / "ipv6.pcap"
    write_pcap(pcap, frames)
    rows = run_tshark(pcap, "ipv6.src", "ipv6.dst", "ipv6.nxt", "icmpv6.type")
    for frame, row in zip(frames, rows, strict=True):
        packet = parse_ipv6(parse_ethernet(frame).payload)
        chain = walk_extension_headers(packet)
        assert v6(row[0]) == packet.source
        assert v6(row[1]) == packet.destination
        assert int(row[2].split(",")[0]) == packet.next_header
        if chain.protocol == 58:
            assert int(row[3].split(",")[0]) == parse_icmpv6(chain.upper_layer).type


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_rejected(name: str) -> None:
    for prefix in prefixes(VECTORS[name]):
        with pytest.raises(DecodeError):
            parse_ipv6(prefix)


def test_all_zero_rejected() -> None:
    with pytest.raises(DecodeError, match="version 0"):
        parse_ipv6(bytes(60))


def test_bad_icmpv6_checksum_rejected() -> None:
    packet = parse_ipv6(VECTORS["neighbor-solicitation"])
    with pytest.raises(DecodeError, match="checksum"):
        parse_icmpv6(packet.payload, v6("2001:db8::6"), packet.destination)


def test_truncated_extension_header_rejected() -> None:
    packet = parse_ipv6(VECTORS["routing-destopt-udp"])
    whole = walk_extension_headers(packet)
    headers_length = len(packet.payload) - len(whole.upper_layer)
    for length in range(len(packet.payload)):
        truncated = dataclasses.replace(packet, payload=packet.payload[:length])
        chain = parse_or_decode_error(walk_extension_headers, truncated)
        if length < headers_length:
            assert chain is None
            continue
        assert chain.extension_headers == whole.extension_headers
        assert chain.upper_layer == whole.upper_layer[: length - headers_length]


def test_long_chain_rejected() -> None:
    options = bytes([60, 0]) + bytes(6)
    payload = options * MAX_EXTENSION_HEADERS + bytes([17, 0]) + bytes(6)
    packet = Ipv6Packet(v6(HOST), v6(ROUTER), 60, payload)
    with pytest.raises(DecodeError, match="more than"):
        walk_extension_headers(packet)


def test_late_hop_by_hop_rejected() -> None:
    payload = bytes([0, 0]) + bytes(6) + bytes([59, 0]) + bytes(6)
    packet = Ipv6Packet(v6(HOST), v6(ROUTER), 60, payload)
    with pytest.raises(DecodeError, match="hop-by-hop"):
        walk_extension_headers(packet)


addresses = st.binary(min_size=16, max_size=16)
packets = st.builds(
    Ipv6Packet,
    source=addresses,
    destination=addresses,
    next_header=st.integers(0, 255),
    payload=st.binary(max_size=120),
    hop_limit=st.integers(0, 255),
    traffic_class=st.integers(0, 255),
    flow_label=st.integers(0, 0xFFFFF),
)
messages = st.builds(
    Icmpv6Message, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)
)


@given(packets)
def test_round_trip(packet: Ipv6Packet) -> None:
    assert parse_ipv6(build_ipv6(packet)) == packet


@given(messages, addresses, addresses)
def test_icmpv6_round_trip(message: Icmpv6Message, source: bytes, destination: bytes) -> None:
    assert parse_icmpv6(build_icmpv6(message, source, destination), source, destination) == message


@given(st.binary(max_size=120))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(parse_ipv6, data)


@given(st.binary(max_size=60), addresses, addresses)
def test_random_icmpv6_raise_only_decode_error(
    data: bytes, source: bytes, destination: bytes
) -> None:
    parse_or_decode_error(lambda d: parse_icmpv6(d, source, destination), data)


@given(packets)
def test_random_chains_raise_only_decode_error(packet: Ipv6Packet) -> None:
    parse_or_decode_error(walk_extension_headers, packet)


@given(
    st.sampled_from([0, 43, 44, 51, 60, 135]),
    st.lists(
        st.sampled_from([0, 43, 44, 51, 59, 60, 58]).flatmap(
            lambda n: st.tuples(st.just(n), st.integers(0, 3))
        ),
        max_size=12,
    ),
)
def test_random_header_stacks_raise_only_decode_error(
    first: int, headers: list[tuple[int, int]]
) -> None:
    payload = b"".join(bytes([n, length]) + bytes(6 + 8 * length) for n, length in headers)
    parse_or_decode_error(walk_extension_headers, Ipv6Packet(v6(HOST), v6(ROUTER), first, payload))
