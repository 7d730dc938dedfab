# -*- test-case-name: tests.codec.test_decode -*-
"""
Tests for L{roaming.codec.decode}: whole frames, malformed frames of every
kind, and composed round trips.
"""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.all import (
    ARP,
    BOOTP,
    DHCP,
    ICMP,
    IP,
    LLC,
    UDP,
    Dot1AD,
    Dot1Q,
    Dot3,
    Ether,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrFragment,
)
from scapy.layers.igmp import IGMP, IGMPv3_MR, IGMPv3_MR_Group

from roaming.codec.arp import ArpOperation
from roaming.codec.decode import DecodedFrame, decode_frame
from roaming.codec.dhcp import DhcpMessage, DhcpMessageType, DhcpOption, build_dhcp
from roaming.codec.ethernet import (
    MAX_FRAME_LENGTH,
    EthernetFrame,
    EtherType,
    VlanTag,
    build_ethernet,
)
from roaming.codec.igmp import IgmpType
from roaming.codec.ipv4 import Ipv4Packet, build_ipv4
from roaming.codec.ipv6 import NdpType
from roaming.codec.llc import Layer2Update
from roaming.codec.udp import UdpDatagram, build_udp
from roaming.errors import DecodeError

from .support import ip_to_int, mac, parse_or_decode_error, prefixes, scapy_bytes

CLIENT = "02:00:00:00:00:01"
GATEWAY = "02:00:00:00:00:fe"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def ether(dst: str = BROADCAST) -> Ether:
    """Return a scapy Ethernet header from the test client."""
    return Ether(src=CLIENT, dst=dst)


VECTORS = {
    "dhcp-discover": scapy_bytes(
        ether()
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac(CLIENT), xid=1)
        / DHCP(options=[("message-type", "discover"), "end"])
    ),
    "dhcp-request-tagged": scapy_bytes(
        ether()
        / Dot1Q(vlan=20)
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac(CLIENT), xid=2)
        / DHCP(options=[("message-type", "request"), ("requested_addr", "10.1.0.5"), "end"])
    ),
    "arp-request-qinq": scapy_bytes(
        ether() / Dot1AD(vlan=100) / Dot1Q(vlan=20) / ARP(psrc="10.1.0.5", pdst="10.1.0.1")
    ),
    "arp-request-padded": scapy_bytes(ether() / ARP(psrc="10.1.0.5", pdst="10.1.0.1") / bytes(18)),
    "igmp-v2-leave": scapy_bytes(
        ether("01:00:5e:00:00:02")
        / IP(src="10.1.0.5", dst="224.0.0.2", ttl=1)
        / IGMP(type=0x17, gaddr="239.1.1.1")
    ),
    "igmp-v3-report": scapy_bytes(
        ether("01:00:5e:00:00:16")
        / IP(src="10.1.0.5", dst="224.0.0.22", ttl=1)
        / IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=4, maddr="239.1.1.1")])
    ),
    "icmp-echo-padded": scapy_bytes(
        ether(GATEWAY) / IP(src="10.1.0.5", dst="10.1.0.1") / ICMP(id=1, seq=1)
    )
    + bytes(18),
    "ipv4-fragment": scapy_bytes(
        ether(GATEWAY) / IP(src="10.1.0.5", dst="10.1.0.1", frag=10, proto=17) / bytes(40)
    ),
    "ipv6-neighbor-solicitation": scapy_bytes(
        ether("33:33:ff:00:00:01")
        / IPv6(src="fe80::5", dst="ff02::1:ff00:1", hlim=255)
        / ICMPv6ND_NS(tgt="fe80::1")
    ),
    "ipv6-fragment": scapy_bytes(
        ether(GATEWAY)
        / IPv6(src="fe80::5", dst="fe80::1")
        / IPv6ExtHdrFragment(offset=2, nh=58)
        / bytes(16)
    ),
    "layer2-update": scapy_bytes(
        Dot3(src=CLIENT, dst=BROADCAST, len=6)
        / LLC(dsap=0, ssap=0, ctrl=0xAF)
        / b"\x81\x01\x00"
        / bytes(40)
    ),
    "llc-other": scapy_bytes(
        Dot3(src=CLIENT, dst="01:80:c2:00:00:00") / LLC(dsap=0x42, ssap=0x42, ctrl=3) / bytes(35)
    ),
    "unknown-ethertype": scapy_bytes(Ether(src=CLIENT, dst=GATEWAY, type=0x88CC) / bytes(46)),
}


def test_dhcp_discover() -> None:
    decoded = decode_frame(VECTORS["dhcp-discover"])
    assert decoded.dhcp.message_type == DhcpMessageType.DISCOVER
    assert decoded.ipv4.source == 0
    assert decoded.udp.destination_port == 67


def test_tagged_dhcp_request() -> None:
    decoded = decode_frame(VECTORS["dhcp-request-tagged"])
    assert decoded.ethernet.vlan_id == 20
    assert decoded.dhcp.message_type == DhcpMessageType.REQUEST
    assert decoded.dhcp.requested_address == ip_to_int("10.1.0.5")


def test_qinq_arp() -> None:
    decoded = decode_frame(VECTORS["arp-request-qinq"])
    assert [tag.vlan_id for tag in decoded.ethernet.tags] == [100, 20]
    assert decoded.arp.operation == ArpOperation.REQUEST
    assert decoded.arp.sender_ip == ip_to_int("10.1.0.5")


def test_igmp_leave() -> None:
    decoded = decode_frame(VECTORS["igmp-v2-leave"])
    assert decoded.igmp.type == IgmpType.LEAVE_GROUP
    assert decoded.igmp.group == ip_to_int("239.1.1.1")


def test_igmp_v3_report() -> None:
    decoded = decode_frame(VECTORS["igmp-v3-report"])
    assert decoded.igmp.type == IgmpType.V3_MEMBERSHIP_REPORT
    assert decoded.igmp.records[0].group == ip_to_int("239.1.1.1")


def test_padding_not_in_icmp() -> None:
    decoded = decode_frame(VECTORS["icmp-echo-padded"])
    assert decoded.icmp.data == b""


def test_ipv4_fragment_upper_layer_skipped() -> None:
    decoded = decode_frame(VECTORS["ipv4-fragment"])
    assert decoded.ipv4.is_fragment
    assert decoded.udp is None


def test_ipv6_ndp() -> None:
    decoded = decode_frame(VECTORS["ipv6-neighbor-solicitation"])
    assert decoded.icmpv6.ndp_type == NdpType.NEIGHBOR_SOLICITATION
    assert decoded.ipv6_chain.protocol == 58


def test_ipv6_fragment_upper_layer_skipped() -> None:
    decoded = decode_frame(VECTORS["ipv6-fragment"])
    assert decoded.ipv6_chain.is_fragment
    assert decoded.icmpv6 is None


def test_layer2_update() -> None:
    decoded = decode_frame(VECTORS["layer2-update"])
    assert decoded.layer2_update == Layer2Update(mac(CLIENT))


def test_other_llc_is_not_update() -> None:
    decoded = decode_frame(VECTORS["llc-other"])
    assert decoded.llc.dsap == 0x42
    assert decoded.layer2_update is None


def test_unknown_ethertype_stops_at_ethernet() -> None:
    decoded = decode_frame(VECTORS["unknown-ethertype"])
    assert decoded.layers == (decoded.ethernet,)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dhcp-request-tagged", "vlan 20 IPv4 0.0.0.0 > 255.255.255.255 UDP 68 > 67 DHCP REQUEST"),
        ("arp-request-qinq", "vlan 100 vlan 20 ARP REQUEST 10.1.0.5 > 10.1.0.1"),
        ("ipv6-neighbor-solicitation", "ICMPv6 NEIGHBOR_SOLICITATION"),
        ("layer2-update", "LLC XID layer 2 update"),
        ("ipv4-fragment", "fragment offset 80"),
        ("unknown-ethertype", "ethertype 0x88cc"),
    ],
)
def test_summary(name: str, expected: str) -> None:
    assert expected in decode_frame(VECTORS[name]).summary()


def test_layers_outermost_first() -> None:
    decoded = decode_frame(VECTORS["dhcp-discover"])
    assert decoded.layers == (decoded.ethernet, decoded.ipv4, decoded.udp, decoded.dhcp)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_truncated_vectors(name: str) -> None:
    whole = decode_frame(VECTORS[name])
    for prefix in prefixes(VECTORS[name]):
        decoded = parse_or_decode_error(decode_frame, prefix)
        if decoded is None:
            continue
        # Only padding or undecoded payload was cut: every decoded layer is intact.
        assert whole.ethernet.payload.startswith(decoded.ethernet.payload)
        for field in dataclasses.fields(DecodedFrame)[1:]:
            assert getattr(decoded, field.name) in (None, getattr(whole, field.name))


@pytest.mark.parametrize(
    ("name", "offset", "protocol"),
    [
        ("dhcp-discover", 14 + 20 + 8 + 4, "udp"),
        ("dhcp-discover", 14 + 8, "ipv4"),
        ("igmp-v2-leave", -1, "igmp"),
        ("icmp-echo-padded", 14 + 20 + 4, "icmp"),
        ("ipv6-neighbor-solicitation", -1, "icmpv6"),
    ],
    ids=["udp", "ipv4", "igmp", "icmp", "icmpv6"],
)
def test_corrupted_byte_fails_checksum(name: str, offset: int, protocol: str) -> None:
    data = bytearray(VECTORS[name])
    data[offset] ^= 0x01
    with pytest.raises(DecodeError, match="checksum") as raised:
        decode_frame(bytes(data))
    assert raised.value.protocol == protocol


def test_corrupted_udp_decodes_without_verification() -> None:
    data = bytearray(VECTORS["dhcp-discover"])
    data[14 + 20 + 8 + 4] ^= 0xFF  # the first byte of the DHCP xid
    with pytest.raises(DecodeError):
        decode_frame(bytes(data))
    assert decode_frame(bytes(data), verify_checksums=False).dhcp is not None


@pytest.mark.parametrize("length", [0, 1, 13, 14, 60, 64, 1514])
def test_all_zero_rejected(length: int) -> None:
    with pytest.raises(DecodeError):
        decode_frame(bytes(length))


def test_oversized_rejected() -> None:
    with pytest.raises(DecodeError, match="exceeds the maximum"):
        decode_frame(VECTORS["dhcp-discover"] + bytes(MAX_FRAME_LENGTH))


@pytest.mark.parametrize(
    ("ethertype", "protocol"),
    [(EtherType.IPV4, "ipv4"), (EtherType.ARP, "arp"), (EtherType.IPV6, "ipv6")],
)
def test_runt_payload_names_layer(ethertype: int, protocol: str) -> None:
    frame = mac(GATEWAY) + mac(CLIENT) + ethertype.to_bytes(2, "big") + b"\x45"
    with pytest.raises(DecodeError) as raised:
        decode_frame(frame)
    assert raised.value.protocol == protocol


def test_inconsistent_ip_length_rejected() -> None:
    data = bytearray(VECTORS["icmp-echo-padded"])
    data[16:18] = (2000).to_bytes(2, "big")
    with pytest.raises(DecodeError) as raised:
        decode_frame(bytes(data), verify_checksums=False)
    assert raised.value.protocol == "ipv4"


addresses = st.integers(0, 2**32 - 1)
individual_macs = (
    st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:]).filter(any)
)
dhcp_messages = st.builds(
    DhcpMessage,
    op=st.sampled_from([1, 2]),
    xid=addresses,
    client_hardware_address=st.binary(min_size=6, max_size=6),
    options=st.tuples(
        st.builds(DhcpOption, st.just(53), st.integers(1, 8).map(lambda t: bytes([t])))
    ),
    ciaddr=addresses,
)


@given(individual_macs, addresses, addresses, dhcp_messages, st.integers(0, 4094))
def test_composed_dhcp_round_trip(
    source_mac: bytes, source: int, destination: int, message: DhcpMessage, vlan_id: int
) -> None:
    datagram = UdpDatagram(68, 67, build_dhcp(message))
    packet = Ipv4Packet(source, destination, 17, build_udp(datagram, source, destination))
    frame = EthernetFrame(
        mac(BROADCAST), source_mac, EtherType.IPV4, build_ipv4(packet), (VlanTag(vlan_id),)
    )
    decoded = decode_frame(build_ethernet(frame))
    assert decoded.ethernet == frame
    assert decoded.ipv4 == packet
    assert decoded.udp == datagram
    assert decoded.dhcp == message


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    parse_or_decode_error(decode_frame, data)


@given(
    st.sampled_from([EtherType.IPV4, EtherType.ARP, EtherType.IPV6, EtherType.VLAN, 0x0010]),
    st.binary(max_size=200),
)
def test_random_payloads_raise_only_decode_error(ethertype: int, payload: bytes) -> None:
    frame = mac(GATEWAY) + mac(CLIENT) + ethertype.to_bytes(2, "big") + payload
    parse_or_decode_error(lambda d: decode_frame(d, verify_checksums=False), frame)


@given(st.sampled_from(sorted(VECTORS)), st.data())
def test_mutated_vectors_raise_only_decode_error(name: str, data: st.DataObject) -> None:
    frame = bytearray(VECTORS[name])
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(frame) - 1))
        frame[position] = data.draw(st.integers(0, 255))
    parse_or_decode_error(lambda d: decode_frame(d, verify_checksums=False), bytes(frame))
