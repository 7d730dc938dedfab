# -*- test-case-name: tests.tunnel.test_endpoint -*-
"""
Tests for L{roaming.tunnel.endpoint}: two endpoints exchanging frames,
checked by scapy and tshark, with malformed input, MTU cases and
keepalives on a fake clock.
"""

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, defragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, GRE, Dot1Q, Ether
from scapy.utils import checksum

from roaming.tunnel import (
    COUNTER_NAMES,
    GreEndpoint,
    LinkState,
    Transport,
    TunnelDown,
    TunnelUp,
    pack_key,
)
from roaming.tunnel import endpoint as endpoint_module
from tests.codec.support import run_tshark, write_pcap

LOCAL = "192.0.2.1"
REMOTE = "192.0.2.2"
KEY = pack_key(12, access_controlled=True)
CLIENT_MAC = "02:00:00:00:00:01"
GATEWAY_MAC = "02:00:00:00:00:fe"
OPTIONS = list(itertools.product((False, True), repeat=2))


def udp_frame(size: int = 64, *, tos: int = 0, df: bool = False, tags: int = 0) -> bytes:
    """
    Build an Ethernet frame of about C{size} bytes carrying IPv4 and UDP.
    """
    ethernet = Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)
    for index in range(tags):
        ethernet = ethernet / Dot1Q(vlan=20 + index, prio=3)
    packet = IP(src="10.1.0.5", dst="203.0.113.9", tos=tos, flags="DF" if df else 0, id=77)
    header = bytes(ethernet / packet / UDP(sport=4000, dport=9))
    return bytes(ethernet / packet / UDP(sport=4000, dport=9) / bytes(max(0, size - len(header))))


def endpoint_pair(transport=Transport.RAW_IPV4, key=KEY, **options):
    """
    Build two endpoints with one tunnel between them: aggregation ID 7 on
    the local side and 9 on the remote side.
    """
    local = GreEndpoint(LOCAL, transport=transport)
    remote = GreEndpoint(REMOTE, transport=transport)
    local.add_tunnel(7, REMOTE, key, **options)
    remote.add_tunnel(9, LOCAL, key, **options)
    return local, remote


def nonzero(counters: dict) -> dict:
    """
    Return the counters that are not zero.
    """
    return {name: value for name, value in counters.items() if value}


@pytest.mark.parametrize("transport", list(Transport))
@pytest.mark.parametrize(("checksum_on", "sequence_on"), OPTIONS)
def test_round_trip(transport, checksum_on, sequence_on):
    """
    A frame encapsulated on one end comes out unchanged on the other, for
    both transports and every option.
    """
    local, remote = endpoint_pair(transport, checksum=checksum_on, sequence=sequence_on)
    frames = [udp_frame(64), udp_frame(1400, tos=0xB8), udp_frame(61)]

    for frame in frames:
        outgoing = local.encapsulate(7, frame, 0.0)
        assert outgoing.address == REMOTE
        assert len(outgoing.packets) == 1
        assert remote.decapsulate(LOCAL, outgoing.packets[0], 0.0) == (9, frame)

    assert nonzero(local.counters) == {"frames-encapsulated": 3}
    assert nonzero(remote.counters) == {"frames-decapsulated": 3}
    assert local.tunnel(7).frames_sent == 3
    assert remote.tunnel(9).frames_received == 3


@pytest.mark.parametrize(("checksum_on", "sequence_on"), OPTIONS)
def test_raw_packet_decoded_by_scapy(checksum_on, sequence_on):
    """
    scapy reads the outer IPv4 header (TOS copied, DF, checksum) and the
    GRE header (key, sequence number, checksum) of a raw packet.
    """
    local, _ = endpoint_pair(checksum=checksum_on, sequence=sequence_on)
    frame = udp_frame(300, tos=0xB9)
    local.encapsulate(7, udp_frame(), 0.0)

    outgoing = local.encapsulate(7, frame, 0.0)

    packet = IP(outgoing.packets[0])
    assert outgoing.tos == 0xB9
    assert packet.tos == 0xB9
    assert packet.flags == "DF"
    assert packet.proto == 47
    assert packet.src == LOCAL
    assert packet.dst == REMOTE
    assert packet.ttl == 64
    assert checksum(outgoing.packets[0][:20]) == 0
    gre = packet[GRE]
    assert gre.proto == 0x6558
    assert gre.key == KEY
    assert gre.seqnum_present == int(sequence_on)
    if sequence_on:
        assert gre.sequence_number == 1
    assert gre.chksum_present == int(checksum_on)
    if checksum_on:
        assert checksum(bytes(gre)) == 0
    assert bytes(gre.payload) == frame


def test_udp_packet_decoded_by_scapy():
    """
    A GRE-in-UDP payload is a GRE packet; the source port comes from the
    flow and is stable for it.
    """
    local, _ = endpoint_pair(Transport.GRE_IN_UDP, sequence=True)
    frame = udp_frame(100, tos=0x28)

    first = local.encapsulate(7, frame, 0.0)
    second = local.encapsulate(7, frame, 0.0)

    gre = GRE(first.packets[0])
    assert gre.key == KEY
    assert gre.sequence_number == 0
    assert bytes(gre.payload) == frame
    assert first.tos == 0x28
    assert 49152 <= first.source_port <= 65535
    assert second.source_port == first.source_port


def test_sequence_wraps_through_endpoint():
    """
    Numbers sent across the wrap from 2**32 - 1 to 0 are all delivered.
    """
    local, remote = endpoint_pair(sequence=True)
    local.tunnel(7).next_sequence = 0xFFFF_FFFE
    frame = udp_frame()

    numbers = []
    for _ in range(4):
        packet = local.encapsulate(7, frame, 0.0).packets[0]
        numbers.append(IP(packet)[GRE].sequence_number)
        assert remote.decapsulate(LOCAL, packet, 0.0) == (9, frame)

    assert numbers == [0xFFFF_FFFE, 0xFFFF_FFFF, 0, 1]


def test_sequence_drops_counted():
    """
    A replayed packet is a duplicate and a late one is out of order; both
    are counted and dropped.
    """
    local, remote = endpoint_pair(sequence=True)
    packets = [local.encapsulate(7, udp_frame(), 0.0).packets[0] for _ in range(3)]

    remote.decapsulate(LOCAL, packets[0], 0.0)
    remote.decapsulate(LOCAL, packets[2], 0.0)

    assert remote.decapsulate(LOCAL, packets[2], 0.0) is None
    assert remote.decapsulate(LOCAL, packets[1], 0.0) is None
    assert remote.counters["sequence-duplicate"] == 1
    assert remote.counters["sequence-out-of-order"] == 1
    assert remote.tunnel(9).receiver.lost == 1


def test_tshark_decodes_tunnel_packets(tmp_path):
    """
    tshark decodes raw and GRE-in-UDP packets as GRE carrying Ethernet with
    the expected key, sequence number, outer DSCP and a good checksum.
    """
    raw, _ = endpoint_pair(checksum=True, sequence=True)
    udp, _ = endpoint_pair(Transport.GRE_IN_UDP, checksum=True, sequence=True)
    link = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02", type=0x0800)
    captured = []
    for _ in range(2):
        outgoing = raw.encapsulate(7, udp_frame(200, tos=0xB8), 0.0)
        captured.append(bytes(link) + outgoing.packets[0])
    for _ in range(2):
        outgoing = udp.encapsulate(7, udp_frame(200, tos=0x48), 0.0)
        outer = IP(src=LOCAL, dst=REMOTE, tos=outgoing.tos) / UDP(
            sport=outgoing.source_port, dport=4754
        )
        captured.append(bytes(link / outer / outgoing.packets[0]))
    pcap = tmp_path / "tunnel.pcap"
    write_pcap(pcap, captured)

    rows = run_tshark(
        pcap,
        "gre.key",
        "gre.sequence_number",
        "ip.dsfield",
        "gre.checksum.status",
        "gre.proto",
        "eth.src",
    )

    assert len(rows) == 4
    for index, row in enumerate(rows):
        key, sequence, dsfields, status, proto, sources = row
        assert int(key, 0) == KEY
        assert int(sequence, 0) == index % 2
        outer_dsfield = int(dsfields.split(",")[0], 0)
        assert outer_dsfield == (0xB8 if index < 2 else 0x48)
        assert status == "1"
        assert int(proto, 0) == 0x6558
        assert CLIENT_MAC in sources


def test_every_truncation_counted():
    """
    Every prefix of a raw packet is dropped with exactly one counter and
    never raises.
    """
    local, remote = endpoint_pair(checksum=True, sequence=True)
    packet = local.encapsulate(7, udp_frame(80), 0.0).packets[0]

    for length in range(len(packet)):
        before = sum(remote.counters.values())
        assert remote.decapsulate(LOCAL, packet[:length], 0.0) is None
        assert sum(remote.counters.values()) == before + 1, length

    assert remote.counters["frames-decapsulated"] == 0
    assert remote.counters["outer-truncated"] == len(packet)


def test_every_truncation_counted_udp():
    """
    Every prefix of a GRE-in-UDP payload is dropped with one counter; the
    checksum catches prefixes with a whole header.
    """
    local, remote = endpoint_pair(Transport.GRE_IN_UDP, checksum=True, key=KEY)
    # Trailing zero bytes do not change a one's complement sum, so the
    # payload has none.
    frame = bytes(Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / IP() / UDP() / bytes(range(1, 40)))
    packet = local.encapsulate(7, frame, 0.0).packets[0]

    for length in range(len(packet)):
        before = sum(remote.counters.values())
        assert remote.decapsulate(LOCAL, packet[:length], 0.0) is None
        assert sum(remote.counters.values()) == before + 1, length

    assert remote.counters["gre-truncated"] == 12
    assert remote.counters["gre-checksum"] == len(packet) - 12


def raw_gre(gre, *, source=LOCAL, **ip_fields) -> bytes:
    """
    Build an outer IPv4 packet around a scapy GRE layer.
    """
    return bytes(IP(src=source, dst=REMOTE, proto=47, **ip_fields) / gre)


ETHERNET_FRAME = udp_frame(60)


@pytest.mark.parametrize(
    ("packet", "counter"),
    [
        (raw_gre(GRE(version=1, proto=0x880B)), "gre-version"),
        (raw_gre(GRE(routing_present=1, proto=0x6558)), "gre-reserved-bits"),
        (raw_gre(GRE(key_present=1, key=KEY, proto=0x86DD) / IPv6()), "unsupported-protocol"),
        (raw_gre(GRE(key_present=1, key=KEY + 1, proto=0x6558)), "unknown-key"),
        (raw_gre(GRE(key_present=1, key=KEY | 0x0100_0000, proto=0x6558)), "key-reserved-bits"),
        (raw_gre(GRE(proto=0x6558)), "unknown-key"),
        (raw_gre(GRE(key_present=1, key=KEY), source="192.0.2.99"), "unknown-remote"),
        (raw_gre(GRE(key_present=1, key=KEY, proto=0x6558) / b"short"), "runt-frame"),
        (bytes(IP(src=LOCAL, dst=REMOTE) / UDP()), "outer-not-gre"),
        (bytes(IPv6()), "outer-not-ipv4"),
        (
            raw_gre(GRE(key_present=1, key=KEY, proto=0x6558) / ETHERNET_FRAME, flags="MF"),
            "outer-fragment",
        ),
        (
            raw_gre(GRE(key_present=1, key=KEY, proto=0x6558) / ETHERNET_FRAME)[:-1],
            "outer-truncated",
        ),
        (bytes(IP(src=LOCAL, dst=REMOTE, proto=47, ihl=4)), "outer-truncated"),
    ],
)
def test_malformed_counted(packet, counter):
    """
    Each malformed or unexpected packet is dropped under its own counter.
    """
    _, remote = endpoint_pair()
    source = IP(packet).src if packet[0] >> 4 == 4 else LOCAL

    assert remote.decapsulate(source, packet, 0.0) is None
    assert nonzero(remote.counters) == {counter: 1}


def test_bad_gre_checksum_counted():
    """
    A changed payload byte under a GRE checksum is counted and dropped.
    """
    local, remote = endpoint_pair(checksum=True)
    packet = bytearray(local.encapsulate(7, udp_frame(), 0.0).packets[0])
    packet[-1] ^= 0xFF

    assert remote.decapsulate(LOCAL, bytes(packet), 0.0) is None
    assert nonzero(remote.counters) == {"gre-checksum": 1}


def test_scapy_packet_accepted():
    """
    A keyed GRE packet built by scapy is decapsulated.
    """
    _, remote = endpoint_pair()
    packet = raw_gre(GRE(key_present=1, key=KEY, proto=0x6558) / ETHERNET_FRAME)

    assert remote.decapsulate(LOCAL, packet, 0.0) == (9, ETHERNET_FRAME)


def test_keyless_tunnel():
    """
    A tunnel without a key matches packets without K.
    """
    local, remote = endpoint_pair(key=None)
    outgoing = local.encapsulate(7, ETHERNET_FRAME, 0.0)

    assert IP(outgoing.packets[0])[GRE].key_present == 0
    assert remote.decapsulate(LOCAL, outgoing.packets[0], 0.0) == (9, ETHERNET_FRAME)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_arbitrary_input_never_raises(data):
    """
    Arbitrary bytes never raise; each call either returns a frame or
    changes exactly one counter.
    """
    _, remote = endpoint_pair(checksum=False, sequence=True)
    before = sum(remote.counters.values())

    result = remote.decapsulate(LOCAL, data, 0.0)

    assert sum(remote.counters.values()) == before + 1
    if result is not None:
        assert remote.counters["frames-decapsulated"] == 1


@pytest.mark.parametrize("length", [14, 15, 16])
def test_short_ipv4_frames_sent(length):
    """
    Frames with the IPv4 EtherType but no room for the TOS byte are sent
    with the TOS of priority 0.
    """
    local, remote = endpoint_pair()
    frame = (ETHERNET_FRAME[:14] + b"\x45\xb8")[:length]

    outgoing = local.encapsulate(7, frame, 0.0)

    assert outgoing.tos == (0xB8 if length == 16 else 0)
    assert remote.decapsulate(LOCAL, outgoing.packets[0], 0.0) == (9, frame)


def test_encapsulate_drops_counted():
    """
    An unknown aggregation ID and a runt frame are counted, not raised.
    """
    local, _ = endpoint_pair()

    assert local.encapsulate(8, ETHERNET_FRAME, 0.0) is None
    assert local.encapsulate(7, ETHERNET_FRAME[:13], 0.0) is None
    assert nonzero(local.counters) == {"unknown-tunnel": 1, "runt-frame": 1}


@pytest.mark.parametrize(("tags", "mtu"), [(0, 1458), (1, 1454), (2, 1450)])
def test_df_too_big_gets_icmp(tags, mtu):
    """
    An inner IPv4 packet with DF that does not fit is dropped, and an ICMP
    "fragmentation needed" reply with the inner IP MTU waits as a frame for
    the bridge from the tunnel's aggregation ID.
    """
    local, _ = endpoint_pair(path_mtu=1500)
    frame = udp_frame(1473, df=True, tags=tags)
    assert local.tunnel(7).max_frame == 1472

    assert local.encapsulate(7, frame, 0.0) is None

    [(agg_id, reply)] = local.drain_frames()
    assert agg_id == 7
    parsed = Ether(reply)
    assert parsed.dst == CLIENT_MAC
    assert parsed.src == GATEWAY_MAC
    assert parsed[IP].src == LOCAL
    assert parsed[IP].dst == "10.1.0.5"
    assert parsed[ICMP].type == 3
    assert parsed[ICMP].code == 4
    assert parsed[ICMP].nexthopmtu == mtu
    assert checksum(bytes(parsed[ICMP])) == 0
    assert nonzero(local.counters) == {"fragmentation-needed-sent": 1}
    assert local.drain_frames() == []


def test_df_exact_fit_sent():
    """
    A frame of exactly the largest size is sent whole with DF.
    """
    local, _ = endpoint_pair(path_mtu=1500)

    outgoing = local.encapsulate(7, udp_frame(1472, df=True), 0.0)

    assert len(outgoing.packets) == 1
    assert len(outgoing.packets[0]) == 1500


def test_icmp_source_configurable():
    """
    The ICMP reply comes from the configured source address.
    """
    local = GreEndpoint(LOCAL, icmp_source="10.1.0.1")
    local.add_tunnel(7, REMOTE, KEY, path_mtu=1400)

    local.encapsulate(7, udp_frame(1400, df=True), 0.0)

    [(_, reply)] = local.drain_frames()
    assert Ether(reply)[IP].src == "10.1.0.1"
    assert Ether(reply)[ICMP].nexthopmtu == 1358


def test_df_clear_fragmented():
    """
    A frame without DF that does not fit goes out in outer fragments that
    scapy reassembles into the tunnel packet, which the far end
    decapsulates to the original frame.
    """
    local, remote = endpoint_pair(path_mtu=1500, sequence=True)
    remote.max_frame_size = 9018
    frame = udp_frame(3000, tos=0x20)

    outgoing = local.encapsulate(7, frame, 0.0)

    assert len(outgoing.packets) == 3
    fragments = [IP(packet) for packet in outgoing.packets]
    assert all(len(packet) <= 1500 for packet in outgoing.packets)
    assert all(fragment.tos == 0x20 for fragment in fragments)
    [whole] = defragment(fragments)
    assert bytes(whole[GRE].payload) == frame
    assert remote.decapsulate(LOCAL, bytes(whole), 0.0) == (9, frame)
    assert local.counters["outer-fragmented"] == 1


@pytest.mark.parametrize(
    "frame",
    [
        bytes(
            Ether(src=CLIENT_MAC, dst=GATEWAY_MAC)
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / UDP()
            / bytes(1500)
        ),
        bytes(Ether(src=CLIENT_MAC, dst=GATEWAY_MAC) / Dot1Q(prio=5) / ARP() / bytes(1500)),
    ],
)
def test_non_ipv4_too_big_fragmented(frame):
    """
    IPv6 and non-IP frames that do not fit are fragmented in the outer
    header.
    """
    local, _ = endpoint_pair()

    outgoing = local.encapsulate(7, frame, 0.0)

    assert len(outgoing.packets) == 2
    assert local.counters["outer-fragmented"] == 1


def test_udp_too_big_left_to_kernel():
    """
    Over GRE-in-UDP a frame without DF that does not fit is handed over
    whole and counted, because the kernel fragments it.
    """
    local, _ = endpoint_pair(Transport.GRE_IN_UDP)
    assert local.tunnel(7).max_frame == 1500 - 20 - 8 - 8

    outgoing = local.encapsulate(7, udp_frame(1465), 0.0)

    assert len(outgoing.packets) == 1
    assert local.counters["outer-fragmented"] == 1


def test_udp_df_too_big_gets_icmp():
    """
    Over GRE-in-UDP the next-hop MTU accounts for the UDP header.
    """
    local, _ = endpoint_pair(Transport.GRE_IN_UDP)

    assert local.encapsulate(7, udp_frame(1465, df=True), 0.0) is None

    [(_, reply)] = local.drain_frames()
    assert Ether(reply)[ICMP].nexthopmtu == 1450


def test_frame_too_big_for_ipv4():
    """
    A frame that no IPv4 packet can hold is dropped and counted.
    """
    local, _ = endpoint_pair()

    assert local.encapsulate(7, udp_frame(65536 - 20), 0.0) is None
    assert nonzero(local.counters) == {"too-big-dropped": 1}


def test_ecn_congestion_propagated():
    """
    A CE mark on the outer header is copied to an ECN-capable inner IPv4
    packet with a correct checksum (RFC 6040), and a not-ECN-capable inner
    packet is dropped.
    """
    local, remote = endpoint_pair()
    capable = udp_frame(100, tos=0xB8 | 0x02)
    incapable = udp_frame(100, tos=0xB8)
    marked = []
    for frame in (capable, incapable):
        packet = bytearray(local.encapsulate(7, frame, 0.0).packets[0])
        packet[1] |= 0x03
        packet[10:12] = b"\x00\x00"
        marked.append(bytes(IP(bytes(packet))))

    agg_id, frame = remote.decapsulate(LOCAL, marked[0], 0.0)
    assert agg_id == 9

    inner = Ether(frame)[IP]
    assert inner.tos == 0xBB
    assert checksum(bytes(inner)[:20]) == 0
    assert remote.decapsulate(LOCAL, marked[1], 0.0) is None
    assert remote.counters["ecn-congestion-marked"] == 1
    assert remote.counters["ecn-not-ect-dropped"] == 1


def exchange(sender: GreEndpoint, receiver: GreEndpoint, source: str, now: float) -> int:
    """
    Deliver the control packets C{sender} queued to C{receiver}; return how
    many were delivered.
    """
    delivered = 0
    for outgoing in sender.drain_packets():
        for packet in outgoing.packets:
            receiver.decapsulate(source, packet, now)
            delivered += 1
    return delivered


@pytest.mark.parametrize("transport", list(Transport))
def test_keepalive_up_and_down(transport):
    """
    Keepalives reflected by the far end bring the tunnel up. When the far
    end stops replying, the tunnel goes down after the miss count, and it
    comes back up when the far end replies again.
    """
    local, remote = endpoint_pair(transport, keepalive_period=10.0, keepalive_misses=2)
    assert local.next_deadline() == 0.0

    local.poll(0.0)
    assert exchange(local, remote, LOCAL, 0.0) == 1
    assert exchange(remote, local, REMOTE, 0.1) == 1
    assert local.drain_events() == [TunnelUp(7, 0.1)]
    assert local.tunnel(7).link_state is LinkState.UP
    assert local.next_deadline() == 10.0

    for now in (10.0, 20.0, 30.0):
        local.poll(now)
        local.drain_packets()
    assert local.drain_events() == [TunnelDown(7, 30.0, 2)]
    assert local.tunnel(7).link_state is LinkState.DOWN

    local.poll(40.0)
    exchange(local, remote, LOCAL, 40.0)
    exchange(remote, local, REMOTE, 40.1)
    assert local.drain_events() == [TunnelUp(7, 40.1)]
    assert local.counters["keepalive-sent"] == 5
    assert local.counters["keepalive-reply"] == 2
    assert remote.counters["keepalive-reflected"] == 2


def test_keepalive_event_resets_sequence_receiver():
    """
    A tunnel that goes down forgets the last sequence number it accepted,
    so a far end that restarted its numbering at 0 is heard again.
    """
    local = GreEndpoint(LOCAL)
    remote = GreEndpoint(REMOTE)
    local.add_tunnel(7, REMOTE, KEY, sequence=True)
    remote.add_tunnel(9, LOCAL, KEY, sequence=True, keepalive_period=10.0, keepalive_misses=2)
    frame = udp_frame()
    for number in range(5):
        assert remote.decapsulate(LOCAL, sequenced_packet(number, Ether(frame)), 0.0) == (9, frame)
    # Before the tunnel goes down, number 0 is stale.
    assert remote.decapsulate(LOCAL, sequenced_packet(0, Ether(frame)), 0.0) is None
    stale = remote.counters["sequence-duplicate"] + remote.counters["sequence-out-of-order"]
    assert stale == 1

    for now in (0.0, 10.0, 20.0):
        remote.poll(now)
        remote.drain_packets()
    assert remote.drain_events() == [TunnelDown(9, 20.0, 2)]

    assert remote.decapsulate(LOCAL, sequenced_packet(0, Ether(frame)), 21.0) == (9, frame)
    assert remote.tunnel(9).receiver.last == 0


def test_full_output_queue_counted():
    """
    Control packets beyond the output queue's bound are dropped and
    counted, not queued.
    """
    local, remote = endpoint_pair(keepalive_period=5.0)
    local.poll(0.0)
    [request] = local.drain_packets()
    limit = endpoint_module._QUEUE_LIMIT

    for _ in range(limit + 3):
        remote.decapsulate(LOCAL, request.packets[0], 0.0)

    assert remote.counters["keepalive-reflected"] == limit
    assert remote.counters["queue-full"] == 3
    assert len(remote.drain_packets()) == limit
    remote.decapsulate(LOCAL, request.packets[0], 0.0)
    assert len(remote.drain_packets()) == 1


def test_keepalive_request_format():
    """
    The request is GRE type 0x0800 with the key, carrying IPv4 from the
    remote to the local address, protocol 47, with a bare GRE header of
    type 0 and the key: the Cisco reflected-keepalive format.
    """
    local, _ = endpoint_pair(keepalive_period=5.0)
    local.poll(0.0)

    [outgoing] = local.drain_packets()

    outer = IP(outgoing.packets[0])
    assert outer.src == LOCAL
    assert outer.dst == REMOTE
    assert outer[GRE].proto == 0x0800
    assert outer[GRE].key == KEY
    inner = outer[GRE].payload
    assert inner.src == REMOTE
    assert inner.dst == LOCAL
    assert inner.proto == 47
    assert checksum(bytes(inner)[:20]) == 0
    assert inner[GRE].proto == 0
    assert inner[GRE].key == KEY
    assert len(bytes(inner[GRE])) == 8


def test_reflection_refused_for_other_addresses():
    """
    A keepalive whose inner packet is not from the endpoint's own address
    to the tunnel's remote is not reflected.
    """
    _, remote = endpoint_pair()
    inner = IP(src="198.51.100.7", dst=LOCAL, proto=47) / GRE(proto=0, key_present=1, key=KEY)
    packet = raw_gre(GRE(key_present=1, key=KEY, proto=0x0800) / inner)

    assert remote.decapsulate(LOCAL, packet, 0.0) is None
    assert remote.drain_packets() == []
    assert nonzero(remote.counters) == {"keepalive-invalid": 1}


def test_reply_without_keepalive_counted():
    """
    A reply on a tunnel without keepalives is counted and ignored.
    """
    _, remote = endpoint_pair()

    remote.decapsulate(LOCAL, raw_gre(GRE(key_present=1, key=KEY, proto=0)), 0.0)

    assert remote.drain_events() == []
    assert remote.counters["keepalive-reply"] == 1
    assert remote.tunnel(9).link_state is LinkState.UP


def test_no_keepalive_no_deadline():
    """
    Without keepalives there is no deadline and polling sends nothing.
    """
    local, _ = endpoint_pair()
    local.poll(100.0)

    assert local.next_deadline() is None
    assert not local.has_output


def test_tunnel_table_management():
    """
    Tunnels are looked up by remote and key, removed, and checked for
    conflicts.
    """
    endpoint = GreEndpoint(LOCAL, max_tunnels=2)
    endpoint.add_tunnel(1, REMOTE, KEY)
    endpoint.add_tunnel(2, REMOTE, pack_key(13))

    assert endpoint.lookup(REMOTE, KEY) == 1
    assert endpoint.lookup(int(ipaddress.IPv4Address(REMOTE)), KEY) == 1
    assert endpoint.lookup(REMOTE, None) is None
    assert [tunnel.agg_id for tunnel in endpoint.tunnels()] == [1, 2]
    with pytest.raises(ValueError, match="already a tunnel"):
        endpoint.add_tunnel(1, "192.0.2.3", KEY)
    with pytest.raises(ValueError, match="table is full"):
        endpoint.add_tunnel(3, "192.0.2.3", KEY)

    endpoint.remove_tunnel(1)
    assert endpoint.lookup(REMOTE, KEY) is None
    with pytest.raises(ValueError, match="already aggregation ID 2"):
        endpoint.add_tunnel(3, REMOTE, pack_key(13))
    with pytest.raises(ValueError, match="does not fit 32 bits"):
        endpoint.add_tunnel(3, REMOTE, 1 << 32)
    with pytest.raises(KeyError):
        endpoint.remove_tunnel(1)


def test_set_path_mtu():
    """
    A smaller path MTU lowers the largest frame and the MTU in ICMP
    replies; an invalid one is rejected and leaves the tunnel unchanged.
    """
    local, _ = endpoint_pair()

    local.set_path_mtu(7, 1280)

    assert local.tunnel(7).max_frame == 1252
    assert local.encapsulate(7, udp_frame(1300, df=True), 0.0) is None
    [(_, reply)] = local.drain_frames()
    assert Ether(reply)[ICMP].nexthopmtu == 1238
    with pytest.raises(ValueError, match="path MTU"):
        local.set_path_mtu(7, 40)
    assert local.tunnel(7).path_mtu == 1280


@settings(max_examples=200)
@given(
    body=st.binary(min_size=14, max_size=1472),
    transport=st.sampled_from(list(Transport)),
    checksum_on=st.booleans(),
    sequence_on=st.booleans(),
    key=st.none() | st.integers(0, 0xFFFF_FFFF),
)
def test_round_trip_any_frame(body, transport, checksum_on, sequence_on, key):
    """
    Any frame of 14 bytes or more that fits comes out unchanged.
    """
    local, remote = endpoint_pair(transport, key=key, checksum=checksum_on, sequence=sequence_on)
    frame = body[: local.tunnel(7).max_frame]

    outgoing = local.encapsulate(7, frame, 0.0)

    assert len(outgoing.packets) == 1
    assert remote.decapsulate(LOCAL, outgoing.packets[0], 0.0) == (9, frame)


def test_counter_names_complete():
    """
    Every counter starts at zero under a listed name.
    """
    endpoint = GreEndpoint(LOCAL)

    assert list(endpoint.counters) == list(COUNTER_NAMES)
    assert set(endpoint.counters.values()) == {0}


def test_icmp_rate_limited():
    """
    ICMP replies beyond the burst are dropped and counted until the bucket
    refills at the configured rate.
    """
    local = GreEndpoint(LOCAL, icmp_rate=2.0, icmp_burst=3)
    local.add_tunnel(7, REMOTE, KEY)
    frame = udp_frame(1500, df=True)

    for _ in range(5):
        assert local.encapsulate(7, frame, 10.0) is None
    assert len(local.drain_frames()) == 3
    assert local.counters["fragmentation-needed-rate-limited"] == 2

    local.encapsulate(7, frame, 10.5)
    local.encapsulate(7, frame, 10.5)
    assert len(local.drain_frames()) == 1
    assert local.counters["fragmentation-needed-rate-limited"] == 3


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (1.0, 0)])
def test_icmp_rate_invalid(rate, burst):
    """
    A rate or burst that is not positive raises L{ValueError}.
    """
    with pytest.raises(ValueError, match="ICMP rate"):
        GreEndpoint(LOCAL, icmp_rate=rate, icmp_burst=burst)


def test_udp_outer_ecn_not_ect():
    """
    Over GRE-in-UDP the DSCP is copied but the outer ECN field is Not-ECT
    (RFC 6040 compatibility mode), because the far end cannot see the
    outer header to pass a CE mark on.
    """
    local, _ = endpoint_pair(Transport.GRE_IN_UDP)

    outgoing = local.encapsulate(7, udp_frame(100, tos=0xB9), 0.0)

    assert outgoing.tos == 0xB8


def test_outer_ip_options_skipped():
    """
    An outer IPv4 header with options is skipped by its IHL.
    """
    from scapy.layers.inet import IPOption_Router_Alert

    _, remote = endpoint_pair()
    gre = GRE(key_present=1, key=KEY, proto=0x6558) / ETHERNET_FRAME
    packet = bytes(IP(src=LOCAL, dst=REMOTE, proto=47, options=[IPOption_Router_Alert()]) / gre)
    assert IP(packet).ihl == 6

    assert remote.decapsulate(LOCAL, packet, 0.0) == (9, ETHERNET_FRAME)


def test_trailing_bytes_after_outer_packet_ignored():
    """
    Bytes after the outer IPv4 total length are not part of the frame.
    """
    local, remote = endpoint_pair()
    packet = local.encapsulate(7, ETHERNET_FRAME, 0.0).packets[0]

    assert remote.decapsulate(LOCAL, packet + b"\x00" * 6, 0.0) == (9, ETHERNET_FRAME)


def sequenced_packet(number: int, payload, *, key: int = KEY) -> bytes:
    """
    Build a raw packet from the local address with a GRE key and sequence
    number around a scapy payload.
    """
    gre = GRE(key_present=1, key=key, seqnum_present=1, sequence_number=number, proto=0x6558)
    return raw_gre(gre / payload)


def test_inner_frame_larger_than_maximum_counted():
    """
    A frame longer than the endpoint's largest inner frame is counted and
    dropped, however it arrived; one of exactly that size is delivered.
    """
    _, remote = endpoint_pair()
    assert remote.max_frame_size == 1522
    largest = udp_frame(1522)
    assert len(largest) == 1522

    gre = GRE(key_present=1, key=KEY, proto=0x6558)
    assert remote.decapsulate(LOCAL, raw_gre(gre / largest), 0.0) == (9, largest)
    oversized = raw_gre(gre / udp_frame(1523))
    assert remote.decapsulate(LOCAL, oversized, 0.0) is None
    assert nonzero(remote.counters) == {"frames-decapsulated": 1, "oversized-frame": 1}


@pytest.mark.parametrize("transport", list(Transport))
def test_inner_frame_maximum_configurable(transport):
    """
    A larger maximum lets jumbo frames through.
    """
    local = GreEndpoint(LOCAL, transport=transport)
    remote = GreEndpoint(REMOTE, transport=transport, max_frame_size=9018)
    local.add_tunnel(7, REMOTE, KEY, path_mtu=9100)
    remote.add_tunnel(9, LOCAL, KEY, path_mtu=9100)
    frame = udp_frame(9018)

    [packet] = local.encapsulate(7, frame, 0.0).packets

    assert remote.decapsulate(LOCAL, packet, 0.0) == (9, frame)
    assert nonzero(remote.counters) == {"frames-decapsulated": 1}


@pytest.mark.parametrize("size", [13, 65536])
def test_inner_frame_maximum_checked(size):
    """
    The largest inner frame must hold an Ethernet header and fit an IPv4
    packet.
    """
    with pytest.raises(ValueError, match="largest inner frame"):
        GreEndpoint(LOCAL, max_frame_size=size)


def keepalive_request_to_remote(inner_gre, **inner_fields) -> bytes:
    """
    Build a keepalive request as the local end would send it to the remote
    endpoint, with C{inner_gre} (a scapy layer) as the payload of the inner
    IPv4 packet from the remote back to the local address.
    """
    inner = IP(src=REMOTE, dst=LOCAL, proto=47, **inner_fields) / inner_gre
    return raw_gre(GRE(key_present=1, key=KEY, proto=0x0800) / inner)


@pytest.mark.parametrize(
    "inner_gre",
    [
        GRE(key_present=1, key=0x10, proto=0x6558) / Ether(ETHERNET_FRAME),
        GRE(key_present=1, key=KEY, proto=0) / b"extra",
        GRE(key_present=1, key=KEY + 1, proto=0),
        GRE(proto=0),
        GRE(key_present=1, key=KEY, seqnum_present=1, sequence_number=5, proto=0),
        GRE(key_present=1, key=KEY, proto=0x0800) / IP(),
    ],
    ids=["ethernet", "trailing-bytes", "other-key", "no-key", "sequence", "nested"],
)
def test_reflection_only_of_bare_keepalive(inner_gre):
    """
    A request whose inner GRE header is anything but the bare keepalive
    reply of the tunnel (protocol 0, the tunnel's key, nothing after it) is
    counted and not sent anywhere.
    """
    _, remote = endpoint_pair()

    assert (
        remote.decapsulate(LOCAL, keepalive_request_to_remote(inner_gre, ttl=3, tos=4), 0.0) is None
    )

    assert remote.drain_packets() == []
    assert nonzero(remote.counters) == {"keepalive-invalid": 1}


def test_reflection_refused_for_inner_fragment():
    """
    An inner packet that is a fragment or has IP options is not reflected.
    """
    _, remote = endpoint_pair()
    bare = GRE(key_present=1, key=KEY, proto=0)

    remote.decapsulate(LOCAL, keepalive_request_to_remote(bare, flags="MF"), 0.0)
    remote.decapsulate(LOCAL, keepalive_request_to_remote(bare, options=b"\x01\x01\x01\x00"), 0.0)

    assert remote.drain_packets() == []
    assert nonzero(remote.counters) == {"keepalive-invalid": 2}


def test_reflection_built_by_endpoint():
    """
    The reflected keepalive is built by the endpoint with its own TTL and
    the network-control TOS, not copied from the request.
    """
    _, remote = endpoint_pair()
    request = keepalive_request_to_remote(GRE(key_present=1, key=KEY, proto=0), ttl=3, tos=4)

    remote.decapsulate(LOCAL, request, 0.0)

    [outgoing] = remote.drain_packets()
    [packet] = outgoing.packets
    reply = IP(packet)
    assert (reply.src, reply.dst, reply.proto) == (REMOTE, LOCAL, 47)
    assert reply.ttl == 64
    assert reply.tos == outgoing.tos == 0xC0
    assert checksum(packet[:20]) == 0
    assert bytes(reply[GRE]) == bytes(GRE(key_present=1, key=KEY, proto=0))
    assert len(packet) == 28
    assert nonzero(remote.counters) == {"keepalive-reflected": 1}


def test_reflection_over_udp_is_bare_gre():
    """
    Over GRE-in-UDP the reflected keepalive is the bare GRE header.
    """
    local, remote = endpoint_pair(Transport.GRE_IN_UDP, keepalive_period=5.0)
    local.poll(0.0)
    [request] = local.drain_packets()

    remote.decapsulate(LOCAL, request.packets[0], 0.0)

    [outgoing] = remote.drain_packets()
    assert outgoing.packets == (bytes(GRE(key_present=1, key=KEY, proto=0)),)
    assert outgoing.tos == 0xC0


def test_sequenced_tunnel_drops_packets_without_number():
    """
    A tunnel that receives sequence numbers drops data packets that carry
    none (RFC 2890 section 2.2), but still takes keepalive replies.
    """
    _, remote = endpoint_pair(sequence=True, keepalive_period=5.0)

    unnumbered = raw_gre(GRE(key_present=1, key=KEY, proto=0x6558) / Ether(ETHERNET_FRAME))
    assert remote.decapsulate(LOCAL, unnumbered, 0.0) is None
    remote.decapsulate(LOCAL, raw_gre(GRE(key_present=1, key=KEY, proto=0)), 0.0)

    assert nonzero(remote.counters) == {"sequence-missing": 1, "keepalive-reply": 1}


def test_old_replay_dropped():
    """
    A packet replayed from further back than the window is dropped, and the
    sender's next packet is delivered as usual.
    """
    local, remote = endpoint_pair(sequence=True)
    packets = [local.encapsulate(7, udp_frame(), 0.0).packets[0] for _ in range(101)]
    for packet in packets[:100]:
        assert remote.decapsulate(LOCAL, packet, 0.0) is not None

    assert remote.decapsulate(LOCAL, packets[30], 0.0) is None
    assert remote.decapsulate(LOCAL, packets[31], 0.0) is None
    assert remote.decapsulate(LOCAL, packets[100], 0.0) is not None
    assert remote.counters["sequence-stale"] == 2
    assert remote.counters["sequence-resynchronized"] == 0


def test_restarted_sender_resynchronized():
    """
    A sender that starts again from 0 is followed after a run of
    consecutive stale numbers; the packets of the run before that are
    dropped.
    """
    local, remote = endpoint_pair(sequence=True)
    for _ in range(100):
        remote.decapsulate(LOCAL, local.encapsulate(7, udp_frame(), 0.0).packets[0], 0.0)
    restarted, _ = endpoint_pair(sequence=True)
    run = remote.tunnel(9).receiver.resync_after

    delivered = [
        remote.decapsulate(LOCAL, restarted.encapsulate(7, udp_frame(), 0.0).packets[0], 0.0)
        is not None
        for _ in range(run + 2)
    ]

    assert delivered == [False] * (run - 1) + [True] * 3
    assert remote.counters["sequence-stale"] == run - 1
    assert remote.counters["sequence-resynchronized"] == 1


def test_replayed_run_interrupted_by_live_sender():
    """
    Old packets replayed while the sender is live never reach the run that
    resynchronizes, because every delivered packet starts the run again.
    """
    local, remote = endpoint_pair(sequence=True)
    old = [local.encapsulate(7, udp_frame(), 0.0).packets[0] for _ in range(40)]
    for _ in range(100):
        remote.decapsulate(LOCAL, local.encapsulate(7, udp_frame(), 0.0).packets[0], 0.0)
    run = remote.tunnel(9).receiver.resync_after

    for replayed in old[: run * 3]:
        assert remote.decapsulate(LOCAL, replayed, 0.0) is None
        fresh = local.encapsulate(7, udp_frame(), 0.0).packets[0]
        assert remote.decapsulate(LOCAL, fresh, 0.0) is not None

    assert remote.counters["sequence-resynchronized"] == 0


@pytest.mark.parametrize(
    "dropped",
    [
        b"12345",
        IPv6(),
        Ether(ETHERNET_FRAME),
    ],
    ids=["runt", "unsupported-protocol", "oversized"],
)
def test_dropped_packet_leaves_sequence_alone(dropped):
    """
    A packet that is dropped for another reason does not move the sequence
    state, so the valid packets after it are delivered.
    """
    _, remote = endpoint_pair(sequence=True)
    good = Ether(ETHERNET_FRAME)
    remote.decapsulate(LOCAL, sequenced_packet(0, good), 0.0)
    if isinstance(dropped, Ether):
        remote.max_frame_size = len(ETHERNET_FRAME) - 1
        bad = sequenced_packet(60, dropped)
    elif isinstance(dropped, IPv6):
        gre = GRE(key_present=1, key=KEY, seqnum_present=1, sequence_number=60, proto=0x86DD)
        bad = raw_gre(gre / dropped)
    else:
        bad = sequenced_packet(60, dropped)

    assert remote.decapsulate(LOCAL, bad, 0.0) is None
    remote.max_frame_size = 1522

    delivered = sum(
        remote.decapsulate(LOCAL, sequenced_packet(number, good), 0.0) is not None
        for number in range(1, 61)
    )
    assert delivered == 60
    assert remote.tunnel(9).receiver.last == 60


def test_congestion_drop_leaves_sequence_alone():
    """
    A not-ECN-capable packet dropped for a CE-marked outer header does not
    move the sequence state either.
    """
    _, remote = endpoint_pair(sequence=True)
    good = Ether(ETHERNET_FRAME)
    remote.decapsulate(LOCAL, sequenced_packet(0, good), 0.0)
    gre = GRE(key_present=1, key=KEY, seqnum_present=1, sequence_number=60, proto=0x6558)

    assert remote.decapsulate(LOCAL, raw_gre(gre / good, tos=3), 0.0) is None

    assert remote.decapsulate(LOCAL, sequenced_packet(1, good), 0.0) is not None
    assert nonzero(remote.counters) == {"frames-decapsulated": 2, "ecn-not-ect-dropped": 1}


def test_icmp_token_spent_only_on_reply():
    """
    Frames that may get no ICMP reply (to a broadcast address) are counted
    as too big and leave the rate limit alone, so the next sender that may
    get a reply gets one.
    """
    local = GreEndpoint(LOCAL, icmp_rate=1.0, icmp_burst=1)
    local.add_tunnel(7, REMOTE, KEY)
    frame = udp_frame(1600, df=True)
    broadcast = b"\xff" * 6 + frame[6:]

    for _ in range(10):
        assert local.encapsulate(7, broadcast, 0.0) is None
    assert local.encapsulate(7, frame, 0.0) is None

    assert len(local.drain_frames()) == 1
    assert nonzero(local.counters) == {"too-big-dropped": 10, "fragmentation-needed-sent": 1}
