"""
Tests for L{roaming.ports.tunnels}: GRE framing checked against scapy's
GRE and IPv4 layers, an implementation independent of ours.
"""

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import GRE, Ether

from roaming.errors import DecodeError
from roaming.ports.tunnels import (
    DEFAULT_PCP_TO_TOS,
    GreTunnel,
    GreTunnelTable,
)

from .frames import arp_request, tagged_udp, udp_frame

REMOTE = "192.0.2.2"
KEY = 0x00A5_0001


def _table(**kw) -> GreTunnelTable:
    table = GreTunnelTable("192.0.2.1", **kw)
    table.add_tunnel(GreTunnel(agg_id=7, remote=REMOTE, key=KEY))
    return table


def _scapy_gre(frame: bytes, **fields) -> bytes:
    return bytes(GRE(proto=0x6558, **fields) / Ether(frame))


class TestEncapsulate:
    def test_header_fields(self):
        """
        The GRE header carries key, sequence number and protocol 0x6558,
        followed by the frame unchanged.
        """
        frame = udp_frame(b"payload")
        remote, _, packet = _table().encapsulate(7, frame)
        decoded = GRE(packet)
        assert remote == REMOTE
        assert decoded.key_present == 1
        assert decoded.seqnum_present == 1
        assert decoded.chksum_present == 0
        assert decoded.key == KEY
        assert decoded.sequence_number == 0
        assert decoded.proto == 0x6558
        assert bytes(decoded.payload) == frame

    def test_sequence_counts_up_and_wraps(self):
        """
        Sequence numbers start at 0 and wrap from 2**32 - 1 to 0.
        """
        table = _table()
        numbers = [GRE(table.encapsulate(7, udp_frame())[2]).sequence_number for _ in range(3)]
        assert numbers == [0, 1, 2]
        table._next_sequence[7] = 0xFFFF_FFFF
        wrapped = [GRE(table.encapsulate(7, udp_frame())[2]).sequence_number for _ in range(2)]
        assert wrapped == [0xFFFF_FFFF, 0]

    def test_tos_copied_from_ipv4(self):
        """
        The outer TOS is the inner IPv4 TOS, with or without a VLAN tag.
        """
        table = _table()
        assert table.encapsulate(7, udp_frame(tos=0xB8))[1] == 0xB8
        assert table.encapsulate(7, tagged_udp(vlan=9, priority=1, tos=0x28))[1] == 0x28

    def test_tos_from_priority_for_non_ip(self):
        """
        A non-IP frame gets the table's TOS for its 802.1p priority, and
        priority 0 when untagged.
        """
        table = _table()
        assert table.encapsulate(7, arp_request(priority=5))[1] == 0xA0
        assert table.encapsulate(7, arp_request())[1] == 0
        custom = _table(pcp_to_tos=(4, 8, 12, 16, 20, 24, 28, 32))
        assert custom.encapsulate(7, arp_request(priority=6))[1] == 28

    def test_default_priority_map_is_class_selectors(self):
        """
        The default map sends priority p to class selector DSCP 8p.
        """
        assert [tos >> 2 for tos in DEFAULT_PCP_TO_TOS] == [0, 8, 16, 24, 32, 40, 48, 56]

    def test_unknown_tunnel(self):
        """
        Encapsulating for an aggregation ID without a tunnel raises KeyError.
        """
        with pytest.raises(KeyError):
            _table().encapsulate(8, udp_frame())

    def test_outer_ipv4(self):
        """
        The outer header is IPv4, protocol 47, from local to remote, with
        the TOS and total length scapy expects.
        """
        table = _table()
        remote, tos, gre_packet = table.encapsulate(7, udp_frame(tos=0x10))
        decoded = IP(table.build_ipv4(remote, tos, gre_packet))
        assert decoded.version == 4
        assert decoded.ihl == 5
        assert decoded.proto == 47
        assert decoded.tos == 0x10
        assert decoded.src == "192.0.2.1"
        assert decoded.dst == REMOTE
        assert decoded.len == 20 + len(gre_packet)
        assert bytes(decoded.payload) == gre_packet


class TestDecapsulate:
    def test_scapy_packet(self):
        """
        A GRE packet built by scapy with key and sequence number yields the
        tunnel's aggregation ID and the frame.
        """
        frame = udp_frame(b"from scapy")
        packet = _scapy_gre(frame, key_present=1, key=KEY, seqnum_present=1, sequence_number=0)
        assert _table().decapsulate(REMOTE, packet) == (7, frame)

    def test_checksum_verified(self):
        """
        A packet with a correct checksum (computed by scapy) is accepted and
        one with a flipped payload bit is rejected.
        """
        frame = udp_frame(b"checksummed")
        packet = _scapy_gre(frame, chksum_present=1, key_present=1, key=KEY)
        assert _table().decapsulate(REMOTE, packet) == (7, frame)
        damaged = packet[:-1] + bytes([packet[-1] ^ 0x01])
        with pytest.raises(DecodeError, match="checksum"):
            _table().decapsulate(REMOTE, damaged)

    @pytest.mark.parametrize("frame", [b"", b"12345", bytes(13)])
    def test_runt_frame_rejected(self, frame):
        """
        A payload shorter than an Ethernet header is malformed.
        """
        packet = _scapy_gre(b"", key_present=1, key=KEY)[:8] + frame
        with pytest.raises(DecodeError, match="shorter than the 14-byte Ethernet header"):
            _table().decapsulate(REMOTE, packet)

    @pytest.mark.parametrize("size", [14, 60])
    def test_all_zero_frame_rejected(self, size):
        """
        A frame whose Ethernet header is all zero is malformed.
        """
        packet = _scapy_gre(b"", key_present=1, key=KEY)[:8] + bytes(size)
        with pytest.raises(DecodeError, match="all zero"):
            _table().decapsulate(REMOTE, packet)

    def test_without_key_matches_key_zero(self):
        """
        A packet without a key belongs to the tunnel with key 0.
        """
        table = GreTunnelTable("192.0.2.1")
        table.add_tunnel(GreTunnel(agg_id=3, remote=REMOTE, key=0))
        frame = udp_frame()
        assert table.decapsulate(REMOTE, _scapy_gre(frame)) == (3, frame)

    def test_unknown_peer_counted(self):
        """
        Packets from an unknown address, or with an unknown key, are dropped
        and counted.
        """
        table = _table()
        frame = udp_frame()
        assert table.decapsulate("192.0.2.99", _scapy_gre(frame, key_present=1, key=KEY)) is None
        assert table.decapsulate(REMOTE, _scapy_gre(frame, key_present=1, key=KEY + 1)) is None
        assert table.counters.unknown_peer == 2

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"version": 1}, "version"),
            ({"recursion_control": 4}, "reserved"),
            ({"routing_present": 1}, "reserved"),
            ({"strict_route_source": 1}, "reserved"),
        ],
    )
    def test_invalid_header_rejected(self, fields, message):
        """
        Non-zero version and reserved bits raise DecodeError.
        """
        packet = _scapy_gre(udp_frame(), key_present=1, key=KEY, **fields)
        with pytest.raises(DecodeError, match=message):
            _table().decapsulate(REMOTE, packet)

    def test_reserved_bits_6_to_12_ignored(self):
        """
        Reserved bits 6 to 12 are ignored on receipt (RFC 2784 section 2.3).
        """
        frame = udp_frame()
        for fields in ({"recursion_control": 3}, {"flags": 0x1F}):
            packet = _scapy_gre(frame, key_present=1, key=KEY, **fields)
            assert _table().decapsulate(REMOTE, packet) == (7, frame)

    def test_other_protocol_rejected(self):
        """
        A GRE packet carrying IPv4 (0x0800) instead of Ethernet is rejected.
        """
        packet = bytes(GRE(proto=0x0800, key_present=1, key=KEY) / IP())
        with pytest.raises(DecodeError, match="protocol type"):
            _table().decapsulate(REMOTE, packet)

    @pytest.mark.parametrize(
        "fields",
        [
            {},
            {"key_present": 1, "key": KEY},
            {"key_present": 1, "key": KEY, "seqnum_present": 1, "sequence_number": 0},
            {"chksum_present": 1, "key_present": 1, "key": KEY, "seqnum_present": 1},
        ],
    )
    def test_truncated_header_rejected(self, fields):
        """
        Every truncation inside the GRE header raises DecodeError.
        """
        packet = _scapy_gre(udp_frame(), **fields)
        header_length = 4 + 4 * sum(
            1 for flag in ("chksum_present", "key_present", "seqnum_present") if fields.get(flag)
        )
        for length in range(header_length):
            with pytest.raises(DecodeError):
                _table().decapsulate(REMOTE, packet[:length])

    def test_sequence_in_order_across_wrap(self):
        """
        Sequence numbers are compared in serial-number arithmetic: 2**32 - 1
        then 0 is in order, a repeat or an older number is dropped.
        """
        table = _table()
        frame = udp_frame()

        def packet(number):
            return _scapy_gre(
                frame, key_present=1, key=KEY, seqnum_present=1, sequence_number=number
            )

        for number in (0, 0x7FFF_FFFF, 0xFFFF_FFFE, 0xFFFF_FFFF):
            assert table.decapsulate(REMOTE, packet(number)) == (7, frame)
        assert table.decapsulate(REMOTE, packet(0)) == (7, frame)
        assert table.decapsulate(REMOTE, packet(0)) is None
        assert table.decapsulate(REMOTE, packet(0xFFFF_FFFF)) is None
        assert table.decapsulate(REMOTE, packet(2)) == (7, frame)
        assert table.counters.out_of_order == 2

    def test_first_packet_zero_in_order(self):
        """
        The first packet of a new tunnel, numbered 0, is in order.
        """
        frame = udp_frame()
        packet = _scapy_gre(frame, key_present=1, key=KEY, seqnum_present=1, sequence_number=0)
        assert _table().decapsulate(REMOTE, packet) == (7, frame)


class TestParseIpv4:
    def test_scapy_packet(self):
        """
        The source and payload of a scapy-built protocol-47 packet with IP
        options are returned.
        """
        gre_packet = _scapy_gre(udp_frame(), key_present=1, key=KEY)
        header = IP(src=REMOTE, dst="192.0.2.1", proto=47, options=b"\x01\x01\x01\x00")
        packet = bytes(header / gre_packet)
        assert _table().parse_ipv4(packet) == (REMOTE, gre_packet)

    def test_invalid_packets_rejected(self):
        """
        Truncated packets, other versions, short IHL and other protocols
        raise DecodeError.
        """
        table = _table()
        good = bytes(IP(src=REMOTE, dst="192.0.2.1", proto=47) / (b"\x00" * 8))
        for length in range(20):
            with pytest.raises(DecodeError):
                table.parse_ipv4(good[:length])
        with pytest.raises(DecodeError, match="version"):
            table.parse_ipv4(bytes([0x65]) + good[1:])
        with pytest.raises(DecodeError, match="version"):
            table.parse_ipv4(bytes([0x44]) + good[1:])
        with pytest.raises(DecodeError, match="not GRE"):
            table.parse_ipv4(bytes(IP(src=REMOTE, proto=17) / (b"\x00" * 8)))


class TestTable:
    def test_add_rejects_conflicts(self):
        """
        A repeated aggregation ID, a repeated (remote, key) pair, a key
        wider than 32 bits and a full table are rejected.
        """
        table = _table(max_tunnels=2)
        with pytest.raises(ValueError, match="already a tunnel"):
            table.add_tunnel(GreTunnel(agg_id=7, remote="192.0.2.3", key=1))
        with pytest.raises(ValueError, match="already exists"):
            table.add_tunnel(GreTunnel(agg_id=8, remote=REMOTE, key=KEY))
        with pytest.raises(ValueError, match="32-bit"):
            table.add_tunnel(GreTunnel(agg_id=8, remote=REMOTE, key=1 << 32))
        table.add_tunnel(GreTunnel(agg_id=8, remote=REMOTE, key=2))
        with pytest.raises(ValueError, match="full"):
            table.add_tunnel(GreTunnel(agg_id=9, remote=REMOTE, key=3))

    def test_remove(self):
        """
        A removed tunnel no longer encapsulates or matches received packets.
        """
        table = _table()
        table.remove_tunnel(7)
        table.remove_tunnel(7)
        assert table.tunnels() == []
        with pytest.raises(KeyError):
            table.encapsulate(7, udp_frame())
        packet = _scapy_gre(udp_frame(), key_present=1, key=KEY)
        assert table.decapsulate(REMOTE, packet) is None

    def test_priority_map_needs_eight_entries(self):
        """
        A priority map without exactly 8 entries is rejected.
        """
        with pytest.raises(ValueError, match="8 entries"):
            GreTunnelTable("192.0.2.1", pcp_to_tos=(0,) * 7)
