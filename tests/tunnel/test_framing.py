# -*- test-case-name: tests.tunnel.test_framing -*-
"""
Tests for L{roaming.tunnel.framing}: outer IPv4 headers and fragments,
ICMP "fragmentation needed" and the MTU arithmetic, checked with scapy.
"""

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.utils import checksum

from roaming.tunnel.framing import (
    OuterIPv4,
    build_fragmentation_needed,
    flow_source_port,
    max_inner_frame,
    tunnel_overhead,
)

LOCAL = int(ipaddress.IPv4Address("192.0.2.1"))
REMOTE = int(ipaddress.IPv4Address("192.0.2.2"))
CLIENT_MAC = "02:00:00:00:00:01"
GATEWAY_MAC = "02:00:00:00:00:fe"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, 24),
        ({"key": True}, 28),
        ({"checksum": True, "key": True, "sequence": True}, 36),
        ({"udp": True}, 32),
        ({"udp": True, "key": True, "sequence": True}, 40),
    ],
)
def test_overhead(options, expected):
    """
    IPv4 20 + GRE 4 + 4 per option, and 8 more for UDP.
    """
    assert tunnel_overhead(**options) == expected


def test_max_inner_frame():
    """
    A 1500-byte path with a keyed raw GRE tunnel carries 1472-byte frames.
    """
    assert max_inner_frame(1500, tunnel_overhead(key=True)) == 1472
    assert max_inner_frame(9000, tunnel_overhead(udp=True)) == 8968


@pytest.mark.parametrize("path_mtu", [67, 65536, 100])
def test_max_inner_frame_invalid(path_mtu):
    """
    Path MTUs outside IPv4's range, or too small for a frame with a minimal
    IPv4 packet, raise L{ValueError}.
    """
    with pytest.raises(ValueError, match="path MTU"):
        max_inner_frame(path_mtu, tunnel_overhead(udp=True, key=True, sequence=True))


@pytest.mark.parametrize(
    ("tos", "identification", "fragment"),
    [(0, 0, 0), (0xB8, 1234, 0x4000), (0xFF, 0xFFFF, 0x2000 | 0x1FFF), (0x03, 7, 0x0001)],
)
def test_header_checksum(tos, identification, fragment):
    """
    Headers decoded by scapy carry the checksum scapy computes itself.
    """
    header = OuterIPv4(LOCAL, REMOTE, 47, ttl=33).header(tos, 60, identification, fragment)
    parsed = IP(header)

    assert parsed.version == 4
    assert parsed.ihl == 5
    assert parsed.tos == tos
    assert parsed.len == 60
    assert parsed.id == identification
    assert (int(parsed.flags) << 13) | parsed.frag == fragment
    assert parsed.ttl == 33
    assert parsed.proto == 47
    assert parsed.src == "192.0.2.1"
    assert parsed.dst == "192.0.2.2"
    assert checksum(header) == 0


def test_ttl_out_of_range():
    """
    A TTL of 0 raises L{ValueError}.
    """
    with pytest.raises(ValueError, match="TTL"):
        OuterIPv4(LOCAL, REMOTE, 47, ttl=0)


def test_packet_fits_with_df():
    """
    A payload that fits gives one packet, with DF when asked for.
    """
    outer = OuterIPv4(LOCAL, REMOTE, 47)

    packets = outer.packets((b"ab", b"cd" * 10), 22, 0x20, 9, 1500, dont_fragment=True)

    assert len(packets) == 1
    parsed = IP(packets[0])
    assert parsed.flags == "DF"
    assert bytes(parsed.payload) == b"ab" + b"cd" * 10


@pytest.mark.parametrize("path_mtu", [68, 576, 1000, 1500])
def test_fragments_reassemble(path_mtu):
    """
    A payload larger than the path is split into fragments that fit, have
    offsets in 8-byte units and no DF, and that scapy reassembles to the
    original.
    """
    from scapy.layers.inet import defragment

    payload = bytes(range(256)) * 12 + b"tail"
    outer = OuterIPv4(LOCAL, REMOTE, 47)

    packets = outer.packets((payload[:8], payload[8:]), len(payload), 0x28, 77, path_mtu, True)

    assert len(packets) > 1
    parsed = [IP(packet) for packet in packets]
    for fragment in parsed:
        assert len(bytes(fragment)) <= path_mtu
        assert fragment.id == 77
        assert fragment.tos == 0x28
        assert "DF" not in fragment.flags
        assert checksum(bytes(fragment)[:20]) == 0
    assert all("MF" in fragment.flags for fragment in parsed[:-1])
    assert "MF" not in parsed[-1].flags
    reassembled = defragment(parsed)
    assert len(reassembled) == 1
    assert bytes(reassembled[0].payload) == payload


def udp_frame(source: str, destination: str, sport: int, dport: int) -> bytes:
    return bytes(
        Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)
        / IP(src=source, dst=destination)
        / UDP(sport=sport, dport=dport)
    )


def test_flow_port_range_and_stability():
    """
    Ports are within 49152-65535, equal for one flow, and spread over
    different flows.
    """
    ports = {flow_source_port(udp_frame("10.0.0.1", "10.0.0.2", 1024 + n, 53)) for n in range(64)}

    assert all(49152 <= port <= 65535 for port in ports)
    assert len(ports) > 32
    first = udp_frame("10.0.0.1", "10.0.0.2", 5000, 53)
    assert flow_source_port(first) == flow_source_port(first + b"")


def test_flow_port_ignores_payload_and_tags():
    """
    The payload and the IPv4 identification do not change the port; a
    different port number does.
    """
    base = Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / IP(src="10.0.0.1", dst="10.0.0.2")
    one = bytes(base / UDP(sport=1, dport=2) / b"a")
    other_payload = bytes(base / UDP(sport=1, dport=2) / b"bbbb")
    other_port = bytes(base / UDP(sport=3, dport=2) / b"a")

    assert flow_source_port(one) == flow_source_port(other_payload)
    assert flow_source_port(one) != flow_source_port(other_port)


def test_flow_port_other_frames():
    """
    IPv6, tagged TCP, ARP and runt frames all get a port in range.
    """
    frames = [
        bytes(
            Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)
            / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=5)
            / UDP()
        ),
        bytes(
            Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)
            / Dot1Q(vlan=4)
            / IP(src="10.0.0.1", dst="10.0.0.3")
            / TCP()
        ),
        bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP()),
        b"\x01\x02",
    ]
    for frame in frames:
        assert 49152 <= flow_source_port(frame) <= 65535


def big_frame(tags: int = 0, size: int = 1500) -> bytes:
    """
    Build an Ethernet frame with an IPv4 packet of C{size} bytes and DF.
    """
    ethernet = Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)
    for vlan in range(tags):
        ethernet = ethernet / Dot1Q(vlan=10 + vlan)
    packet = IP(src="10.1.0.5", dst="203.0.113.9", flags="DF", id=4321) / UDP(sport=4000, dport=9)
    return bytes(ethernet / packet / bytes(size - 28))


@pytest.mark.parametrize("tags", [0, 1, 2])
def test_fragmentation_needed(tags):
    """
    The reply is an Ethernet frame back to the client (MACs swapped, tags
    kept) carrying ICMP type 3 code 4 with the next-hop MTU, a valid
    checksum and the start of the original packet.
    """
    frame = big_frame(tags)
    ip_offset = 14 + 4 * tags

    reply = build_fragmentation_needed(frame, ip_offset, 1458 - 4 * tags, LOCAL, 99)

    parsed = Ether(reply)
    assert parsed.dst == CLIENT_MAC
    assert parsed.src == GATEWAY_MAC
    vlans = [parsed.getlayer(Dot1Q, nb=index + 1).vlan for index in range(tags)]
    assert vlans == [10 + index for index in range(tags)]
    assert parsed.getlayer(Dot1Q, nb=tags + 1) is None
    ip = parsed[IP]
    assert ip.src == "192.0.2.1"
    assert ip.dst == "10.1.0.5"
    assert ip.proto == 1
    assert ip.id == 99
    assert checksum(bytes(ip)[:20]) == 0
    icmp = parsed[ICMP]
    assert icmp.type == 3
    assert icmp.code == 4
    assert icmp.nexthopmtu == 1458 - 4 * tags
    assert checksum(bytes(icmp)) == 0
    assert len(bytes(ip)) == 576
    quoted = icmp[IPerror]
    assert quoted.src == "10.1.0.5"
    assert quoted.id == 4321


def test_fragmentation_needed_short_quote():
    """
    A small packet is quoted whole.
    """
    frame = big_frame(size=100)

    reply = build_fragmentation_needed(frame, 14, 90, LOCAL, 1)

    icmp = Ether(reply)[ICMP]
    assert bytes(icmp)[8:] == frame[14:]


@pytest.mark.parametrize(
    "packet",
    [
        IP(src="10.1.0.5", dst="10.0.0.1", flags="DF") / ICMP(type=3, code=1) / bytes(1400),
        IP(src="0.0.0.0", dst="10.0.0.1", flags="DF") / UDP() / bytes(1400),
        IP(src="224.0.0.5", dst="10.0.0.1", flags="DF") / UDP() / bytes(1400),
        IP(src="255.255.255.255", dst="10.0.0.1", flags="DF") / UDP() / bytes(1400),
        IP(src="240.0.0.1", dst="10.0.0.1", flags="DF") / UDP() / bytes(1400),
        IP(src="127.0.0.1", dst="10.0.0.1", flags="DF") / UDP() / bytes(1400),
        IP(src="10.1.0.5", dst="239.1.2.3", flags="DF") / UDP() / bytes(1400),
        IP(src="10.1.0.5", dst="255.255.255.255", flags="DF") / UDP() / bytes(1400),
        IP(src="10.1.0.5", dst="10.0.0.1", flags="DF", frag=185) / bytes(1400),
    ],
)
def test_fragmentation_needed_suppressed(packet):
    """
    No error about an ICMP error or a non-initial fragment, to a source
    that is not a single host, or about a packet to a multicast or
    broadcast address (RFC 1122 section 3.2.2).
    """
    frame = bytes(Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / packet)

    assert build_fragmentation_needed(frame, 14, 1400, LOCAL, 1) is None


def test_fragmentation_needed_link_broadcast_suppressed():
    """
    No error about a frame sent to a link-layer broadcast or multicast
    address.
    """
    packet = IP(src="10.1.0.5", dst="10.0.0.1", flags="DF") / UDP() / bytes(1400)
    for destination in ("ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01"):
        frame = bytes(Ether(src=CLIENT_MAC, dst=destination) / packet)
        assert build_fragmentation_needed(frame, 14, 1400, LOCAL, 1) is None


def test_fragmentation_needed_ignores_padding():
    """
    Ethernet padding after the IPv4 packet is not quoted.
    """
    frame = big_frame(size=100) + b"\xee" * 20

    reply = build_fragmentation_needed(frame, 14, 90, LOCAL, 1)

    assert bytes(Ether(reply)[ICMP])[8:] == frame[14:114]


def test_fragmentation_needed_echo_request_answered():
    """
    An ICMP echo request, which is not an error, gets the reply.
    """
    packet = IP(src="10.1.0.5", dst="10.0.0.1", flags="DF") / ICMP(type=8) / bytes(1400)
    frame = bytes(Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / packet)

    reply = build_fragmentation_needed(frame, 14, 1400, LOCAL, 1)

    assert Ether(reply)[ICMP].type == 3


def test_flow_port_ipv6_fields():
    """
    IPv6 flows differ by flow label and addresses, not by payload.
    """
    base = Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)

    def port(flow_label: int, source: str, payload: bytes) -> int:
        packet = IPv6(src=source, dst="2001:db8::2", fl=flow_label) / UDP() / payload
        return flow_source_port(bytes(base / packet))

    assert port(1, "2001:db8::1", b"a") == port(1, "2001:db8::1", b"bbb")
    assert len({port(label, "2001:db8::1", b"") for label in range(32)}) > 16
    assert len({port(0, f"2001:db8::{n:x}", b"") for n in range(1, 33)}) > 16


def test_flow_port_same_in_every_process():
    """
    The port of a flow does not depend on Python's per-process hash salt.
    """
    import subprocess
    import sys
    from pathlib import Path

    import roaming

    checkout = str(Path(roaming.__file__).resolve().parents[1])
    frame = udp_frame("10.0.0.1", "10.0.0.2", 1234, 53)
    script = (
        "import sys; from roaming.tunnel.framing import flow_source_port; "
        "print(flow_source_port(bytes.fromhex(sys.argv[1])))"
    )
    ports = set()
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script, frame.hex()],
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": checkout},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        ports.add(int(result.stdout))

    assert ports == {flow_source_port(frame)}
