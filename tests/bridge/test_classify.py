# -*- test-case-name: tests.bridge.test_classify -*-
"""
Tests for L{roaming.bridge.classify}, with frames laid out by scapy and
expected values read back by dpkt.
"""

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6ND_RS, IPv6
from scapy.layers.l2 import LLC, Dot3, Ether
from scapy.packet import Raw

from roaming.bridge.classify import (
    DHCP_DISCOVER,
    DHCP_REQUEST,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    classify,
)
from roaming.errors import DecodeError

from .frames import arp_request, dhcp, ip_to_int, ipv4_udp, mac, tagged

STATION = "02:00:00:00:02:07"
SERVER = "02:00:00:00:02:01"


def classify_or_error(frame: bytes) -> tuple | DecodeError:
    """Return what classify returns, or the DecodeError it raises."""
    try:
        return classify(frame)
    except DecodeError as e:
        return e


def test_ipv4_source() -> None:
    """An IPv4 packet yields its source address and no DHCP facts."""
    frame = ipv4_udp(STATION, SERVER, "10.2.0.7", "8.8.8.8")
    assert classify(frame) == (ETHERTYPE_IPV4, ip_to_int("10.2.0.7"), 0, 0, 0)


def test_ipv4_agrees_with_dpkt() -> None:
    """The source address is the one dpkt decodes."""
    frame = ipv4_udp(STATION, SERVER, "192.0.2.33", "198.51.100.1")
    decoded = dpkt.ethernet.Ethernet(frame)
    assert classify(frame)[1] == int.from_bytes(decoded.data.src, "big")


def test_ipv4_options_honoured() -> None:
    """A header with options (IHL above 5) still finds the UDP ports behind it."""
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255", options=[IPOption_RR()])
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac(STATION))
        / DHCP(options=[("message-type", "discover"), "end"])
    )
    assert frame[14] & 0x0F > 5
    assert classify(frame)[2] == DHCP_DISCOVER


def test_ethernet_padding_not_payload() -> None:
    """Bytes after the IPv4 total length are padding: a runt UDP header there is ignored."""
    packet = bytes(IP(src="10.2.0.7", dst="10.2.0.1", proto=17))
    # IPv4 header alone claims UDP but carries no datagram: malformed.
    frame = bytes(Ether(src=STATION, dst=SERVER, type=0x0800)) + packet + bytes(26)
    error = classify_or_error(frame)
    assert isinstance(error, DecodeError)
    assert error.protocol == "udp"


def test_non_first_fragment() -> None:
    """A fragment with a non-zero offset has no UDP header to read."""
    frame = bytes(
        Ether(src=STATION, dst=SERVER)
        / IP(src="10.2.0.7", dst="10.2.0.1", proto=17, frag=100)
        / Raw(b"\x00\x44\x00\x43" + bytes(20))
    )
    assert classify(frame) == (ETHERTYPE_IPV4, ip_to_int("10.2.0.7"), 0, 0, 0)


def test_arp_sender() -> None:
    """An ARP request yields its sender protocol address."""
    frame = arp_request(STATION, "10.2.0.7", "10.2.0.1")
    assert classify(frame) == (ETHERTYPE_ARP, ip_to_int("10.2.0.7"), 0, 0, 0)
    decoded = dpkt.ethernet.Ethernet(frame)
    assert classify(frame)[1] == int.from_bytes(decoded.data.spa, "big")


def test_arp_reply_sender() -> None:
    """An ARP reply yields its sender protocol address too."""
    frame = bytes(
        Ether(src=STATION, dst=SERVER)
        / dpkt.arp.ARP(
            op=2,
            sha=mac(STATION),
            spa=bytes([10, 2, 0, 7]),
            tha=mac(SERVER),
            tpa=bytes([10, 2, 0, 1]),
        ).pack()
    )
    frame = frame[:12] + b"\x08\x06" + frame[14:]
    assert classify(frame) == (ETHERTYPE_ARP, ip_to_int("10.2.0.7"), 0, 0, 0)


@pytest.mark.parametrize(
    "vlans, outer",
    [((100,), 0x88A8), ((10, 100), 0x88A8), ((10, 100), 0x9100)],
    ids=["802.1Q", "802.1ad", "0x9100"],
)
def test_tagged_arp(vlans: tuple[int, ...], outer: int) -> None:
    """VLAN tags are skipped before reading the ARP header."""
    frame = tagged(arp_request(STATION, "10.2.0.7", "10.2.0.1"), *vlans, outer_tpid=outer)
    assert classify(frame) == (ETHERTYPE_ARP, ip_to_int("10.2.0.7"), 0, 0, 0)


def test_three_tags_not_inspected() -> None:
    """A third tag is beyond the bound: the frame yields no layer-3 facts."""
    inner = tagged(arp_request(STATION, "10.2.0.7", "10.2.0.1"), 10, 100)
    frame = inner[:12] + b"\x81\x00\x00\x05" + inner[12:]
    assert classify(frame) == (0x8100, 0, 0, 0, 0)


def test_tagged_dhcp() -> None:
    """A DHCP DISCOVER behind two tags is recognised."""
    frame = tagged(dhcp(STATION, "discover"), 10, 100)
    assert classify(frame)[2] == DHCP_DISCOVER


def test_ipv6_and_llc_no_info() -> None:
    """IPv6 and IEEE 802.3 LLC frames carry no IPv4 facts."""
    ipv6 = bytes(Ether(src=STATION, dst="33:33:00:00:00:02") / IPv6() / ICMPv6ND_RS())
    assert classify(ipv6) == (0x86DD, 0, 0, 0, 0)
    llc = bytes(Dot3(src=STATION, dst="ff:ff:ff:ff:ff:ff") / LLC(dsap=0, ssap=1, ctrl=0xAF))
    assert classify(llc) == (3, 0, 0, 0, 0)


def test_dhcp_discover() -> None:
    """A DISCOVER from 0.0.0.0: message type 1, no client address."""
    assert classify(dhcp(STATION, "discover")) == (ETHERTYPE_IPV4, 0, DHCP_DISCOVER, 0, 0)


def test_dhcp_request_selecting() -> None:
    """
    A REQUEST from 0.0.0.0 answering an offer (server identifier present)
    claims no address and reports no requested address.
    """
    frame = dhcp(STATION, "request", requested="10.1.0.77", server_id="10.1.0.1")
    assert classify(frame) == (ETHERTYPE_IPV4, 0, DHCP_REQUEST, 0, 0)


def test_dhcp_request_init_reboot() -> None:
    """
    A REQUEST from 0.0.0.0 with option 50 and no server identifier
    (INIT-REBOOT, RFC 2131 section 4.3.2) reports option 50 as the
    requested address, and still claims no address of its own.
    """
    frame = dhcp(STATION, "request", requested="10.2.0.7")
    decoded = dpkt.dhcp.DHCP(dpkt.ethernet.Ethernet(frame).data.data.data)
    option_50 = next(value for code, value in decoded.opts if code == 50)
    assert classify(frame) == (
        ETHERTYPE_IPV4,
        0,
        DHCP_REQUEST,
        0,
        int.from_bytes(option_50, "big"),
    )
    assert classify(frame)[4] == ip_to_int("10.2.0.7")


def test_dhcp_init_reboot_overloaded() -> None:
    """Option 50 in the 'file' field (option 52 overload) is found too."""
    file_field = b"\x32\x04\x0a\x02\x00\x07\xff" + bytes(121)
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION), file=file_field)
        / DHCP(options=[("message-type", "request"), (52, b"\x01"), "end"])
    )
    assert classify(frame)[2:] == (DHCP_REQUEST, 0, ip_to_int("10.2.0.7"))


def test_dhcp_request_with_address_reports_no_option_50() -> None:
    """A REQUEST that claims an address has no use for option 50."""
    frame = dhcp(STATION, "request", ciaddr="10.2.0.7", requested="10.2.0.8")
    assert classify(frame)[3:] == (ip_to_int("10.2.0.7"), 0)


def test_dhcp_init_reboot_bad_option_50() -> None:
    """Option 50 must be 4 bytes (RFC 2132 section 9.1)."""
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION))
        / DHCP(options=[("message-type", "request"), (50, b"\x0a\x02\x00"), "end"])
    )
    error = classify_or_error(frame)
    assert isinstance(error, DecodeError)
    assert error.protocol == "dhcp"


def test_dhcp_request_ciaddr() -> None:
    """A REQUEST with ciaddr claims that address, even from 0.0.0.0."""
    frame = dhcp(STATION, "request", ciaddr="10.2.0.7")
    assert classify(frame) == (ETHERTYPE_IPV4, 0, DHCP_REQUEST, ip_to_int("10.2.0.7"), 0)


def test_dhcp_request_source_only() -> None:
    """A REQUEST sent from an address but without ciaddr claims its source address."""
    frame = dhcp(STATION, "request", src_ip="10.2.0.7", dst_ip="10.2.0.1", dst_mac=SERVER)
    assert classify(frame) == (
        ETHERTYPE_IPV4,
        ip_to_int("10.2.0.7"),
        DHCP_REQUEST,
        ip_to_int("10.2.0.7"),
        0,
    )


def test_dhcp_server_reply_ignored() -> None:
    """A BOOTREPLY from the server (port 67 to 68) is no client message."""
    frame = bytes(
        Ether(src=SERVER, dst=STATION)
        / IP(src="10.2.0.1", dst="10.2.0.7")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=mac(STATION))
        / DHCP(options=[("message-type", "ack"), "end"])
    )
    assert classify(frame) == (ETHERTYPE_IPV4, ip_to_int("10.2.0.1"), 0, 0, 0)


def test_bootp_without_cookie() -> None:
    """A plain BOOTP request (no magic cookie) has no DHCP message type."""
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION), options=bytes(64))
    )
    assert classify(frame) == (ETHERTYPE_IPV4, 0, 0, 0, 0)


def test_bootp_with_cookie_without_message_type() -> None:
    """
    A BOOTP request with the magic cookie but no option 53 is plain BOOTP
    with vendor extensions (RFC 2132 section 2), not a malformed DHCP
    message.
    """
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION))
        / DHCP(options=[("hostname", b"station"), "end"])
    )
    decoded = dpkt.dhcp.DHCP(dpkt.ethernet.Ethernet(frame).data.data.data)
    assert 53 not in [code for code, _ in decoded.opts]
    assert classify(frame) == (ETHERTYPE_IPV4, 0, 0, 0, 0)


def test_dhcp_message_type_zero() -> None:
    """Option 53 with the unassigned value 0 is no type the bridge acts on, and no error."""
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION))
        / DHCP(options=[(53, b"\x00"), "end"])
    )
    decoded = dpkt.dhcp.DHCP(dpkt.ethernet.Ethernet(frame).data.data.data)
    assert (53, b"\x00") in decoded.opts
    assert classify(frame) == (ETHERTYPE_IPV4, 0, 0, 0, 0)


@pytest.mark.parametrize("length", [0, 1, 6, 12, 13])
def test_shorter_than_ethernet_header(length: int) -> None:
    """A frame shorter than the 14-byte Ethernet header raises DecodeError, nothing else."""
    error = classify_or_error(ipv4_udp(STATION, SERVER, "10.2.0.7", "8.8.8.8")[:length])
    assert isinstance(error, DecodeError)
    assert error.protocol == "ethernet"


def test_dhcp_overload_file_field() -> None:
    """With option 52, the message type may sit in the 'file' field (RFC 2131 4.1)."""
    file_field = b"\x35\x01\x01\xff" + bytes(124)
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION), file=file_field)
        / DHCP(options=[("param_req_list", [1, 3]), (52, b"\x01"), "end"])
    )
    assert classify(frame)[2] == DHCP_DISCOVER


@settings(max_examples=150, deadline=None)
@given(
    message_type=st.sampled_from(["discover", "request", "inform", "release", "decline"]),
    padding=st.integers(min_value=0, max_value=5),
    # Options 50 and 54 have fixed lengths, and 52 moves the option search.
    before=st.lists(
        st.integers(min_value=1, max_value=254).filter(lambda c: c not in (50, 52, 53, 54))
    ),
)
def test_dhcp_type_agrees_with_dpkt(message_type: str, padding: int, before: list[int]) -> None:
    """Wherever option 53 sits among other options, the type is the one dpkt reads."""
    options: list = ["pad"] * padding
    options += [(code, b"\x00\x01") for code in before]
    options += [("message-type", message_type), "end"]
    frame = bytes(
        Ether(src=STATION, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(STATION))
        / DHCP(options=options)
    )
    decoded = dpkt.dhcp.DHCP(dpkt.ethernet.Ethernet(frame).data.data.data)
    expected = next(value[0] for code, value in decoded.opts if code == 53)
    assert classify(frame)[2] == expected


@pytest.mark.parametrize(
    "frame, protocol",
    [
        (bytes(Ether(src=STATION, dst=SERVER, type=0x0800)) + b"\x65" + bytes(19), "ipv4"),
        (bytes(Ether(src=STATION, dst=SERVER, type=0x0800)) + b"\x44" + bytes(19), "ipv4"),
        (
            bytes(Ether(src=STATION, dst=SERVER) / IP(src="10.2.0.7", dst="10.2.0.1", len=10)),
            "ipv4",
        ),
        (bytes(Ether(src=STATION, dst=SERVER, type=0x0806)) + bytes(6), "arp"),
        (bytes(Ether(src=STATION, dst=SERVER, type=0x8100)) + b"\x00", "vlan"),
    ],
    ids=["version 6", "IHL 4", "total length below IHL", "ARP runt", "tag runt"],
)
def test_malformed_headers(frame: bytes, protocol: str) -> None:
    """Inconsistent headers raise DecodeError naming the protocol."""
    error = classify_or_error(frame)
    assert isinstance(error, DecodeError)
    assert error.protocol == protocol


def test_dhcp_bad_options() -> None:
    """
    An option running past the end before option 53, or a two-byte
    message type, raise DecodeError.
    """
    base = dhcp(STATION, "discover")
    options = 14 + 20 + 8 + 240
    assert base[options : options + 3] == b"\x35\x01\x01"
    past_end = base[:options] + b"\x0c\x50abc"
    fixed = bytes(IP(past_end[14:]))  # let scapy fix lengths and checksum
    error = classify_or_error(past_end[:14] + fixed)
    assert isinstance(error, DecodeError) and error.protocol == "dhcp"
    two_bytes = base[:options] + b"\x35\x02\x01\x01\xff" + base[options + 4 :]
    error = classify_or_error(two_bytes)
    assert isinstance(error, DecodeError) and error.protocol == "dhcp"


VECTORS = [
    ipv4_udp(STATION, SERVER, "10.2.0.7", "8.8.8.8"),
    arp_request(STATION, "10.2.0.7", "10.2.0.1"),
    tagged(arp_request(STATION, "10.2.0.7", "10.2.0.1"), 10, 100),
    dhcp(STATION, "discover"),
    dhcp(STATION, "request", ciaddr="10.2.0.7", src_ip="10.2.0.7"),
    tagged(dhcp(STATION, "request", requested="10.1.0.77"), 7),
    dhcp(STATION, "request", requested="10.2.0.7", server_id="10.2.0.1"),
]


@pytest.mark.parametrize("vector", VECTORS, ids=range(len(VECTORS)))
def test_truncated_at_every_length(vector: bytes) -> None:
    """
    Cut at every length from 14 bytes, a frame classifies or raises
    DecodeError; once cut inside the IPv4 or ARP packet it always raises.
    """
    full = classify(vector)
    for length in range(14, len(vector)):
        result = classify_or_error(vector[:length])
        assert isinstance(result, tuple | DecodeError), length
        if isinstance(result, tuple):
            assert result[0] in (full[0], 0x8100, 0x88A8), length
    # The whole frame ends exactly at the packet's end, so one byte less is
    # always inside the IPv4 total length or the 28-byte ARP packet.
    assert isinstance(classify_or_error(vector[:-1]), DecodeError)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(frame: bytes) -> None:
    """Arbitrary bytes classify or raise DecodeError, nothing else."""
    result = classify_or_error(frame)
    assert isinstance(result, tuple | DecodeError)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VECTORS),
    st.lists(st.tuples(st.integers(min_value=12, max_value=400), st.integers(0, 255)), max_size=4),
)
def test_mutated_vectors(vector: bytes, flips: list[tuple[int, int]]) -> None:
    """Valid frames with bytes overwritten classify or raise DecodeError, nothing else."""
    frame = bytearray(vector)
    for position, value in flips:
        if position < len(frame):
            frame[position] = value
    result = classify_or_error(bytes(frame))
    assert isinstance(result, tuple | DecodeError)
