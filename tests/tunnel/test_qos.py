# -*- test-case-name: tests.tunnel.test_qos -*-
"""
Tests for L{roaming.tunnel.qos}: the outer TOS of frames built by scapy.
"""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from roaming.tunnel.qos import DEFAULT_PCP_TO_DSCP, OuterTos, validate_dscp_table

ETHERNET = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def frame(packet) -> bytes:
    """Serialize a scapy packet."""
    return bytes(packet)


@pytest.mark.parametrize("tos", [0x00, 0x28, 0xB8, 0xB9, 0xFF])
def test_ipv4_tos_copied(tos):
    """
    The inner IPv4 TOS byte, ECN bits included, becomes the outer TOS.
    """
    data = frame(ETHERNET / IP(src="10.0.0.1", dst="10.0.0.2", tos=tos) / UDP())

    assert OuterTos().tos_for_frame(data) == tos


def test_ipv4_behind_vlan_tags():
    """
    The TOS of IPv4 behind an 802.1ad and an 802.1Q tag is copied; the
    tags' priorities do not matter.
    """
    data = frame(
        ETHERNET
        / Dot1AD(vlan=100, prio=7)
        / Dot1Q(vlan=5, prio=1)
        / IP(src="10.0.0.1", dst="10.0.0.2", tos=0x48)
        / UDP()
    )

    assert OuterTos().tos_for_frame(data) == 0x48


def test_ipv6_traffic_class_copied():
    """
    The inner IPv6 traffic class becomes the outer TOS.
    """
    data = frame(ETHERNET / Dot1Q(vlan=3) / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xB9))

    assert OuterTos().tos_for_frame(data) == 0xB9


@pytest.mark.parametrize("pcp", range(8))
def test_non_ip_priority_default(pcp):
    """
    ARP behind a tag with priority n gets DSCP CSn, ECN 0.
    """
    data = frame(ETHERNET / Dot1Q(vlan=10, prio=pcp) / ARP(psrc="10.0.0.1", pdst="10.0.0.2"))

    assert OuterTos().tos_for_frame(data) == (8 * pcp) << 2


def test_outer_most_tag_priority():
    """
    With two tags, the priority of the outer-most one is used.
    """
    data = frame(ETHERNET / Dot1AD(vlan=1, prio=6) / Dot1Q(vlan=2, prio=2) / ARP())

    assert OuterTos().tos_for_frame(data) == 48 << 2


def test_untagged_non_ip_is_priority_zero():
    """
    An untagged ARP frame gets the DSCP of priority 0.
    """
    data = frame(ETHERNET / ARP())
    table = (10, 0, 0, 0, 0, 0, 0, 0)

    assert OuterTos().tos_for_frame(data) == 0
    assert OuterTos(table).tos_for_frame(data) == 10 << 2


def test_custom_table():
    """
    A configured table replaces the default.
    """
    table = (0, 8, 16, 24, 34, 46, 48, 56)
    data = frame(ETHERNET / Dot1Q(prio=5) / ARP())

    assert OuterTos(table).tos_for_frame(data) == 46 << 2


def test_truncated_ip_header_uses_priority():
    """
    An IPv4 EtherType with less than two bytes of header falls back to the
    priority table, as does a frame shorter than an Ethernet header.
    """
    header = frame(ETHERNET / Dot1Q(prio=3) / IP())[:18]
    table = OuterTos()

    assert table.tos_for_frame(header + b"\x45") == 24 << 2
    assert table.tos_for_frame(b"\x00" * 13) == 0


def test_wrong_ip_version_uses_priority():
    """
    An IPv4 EtherType whose header says version 6 is not treated as IPv4.
    """
    data = bytearray(frame(ETHERNET / Dot1Q(prio=2) / IP(tos=0xFC)))
    data[18] = 0x65

    assert OuterTos().tos_for_frame(bytes(data)) == 16 << 2


@pytest.mark.parametrize(
    "table",
    [(0,) * 7, (0,) * 9, (0, 0, 0, 0, 0, 0, 0, 64), (-1, 0, 0, 0, 0, 0, 0, 0)],
)
def test_invalid_tables(table):
    """
    Tables without eight DSCPs in 0-63 raise L{ValueError}.
    """
    with pytest.raises(ValueError, match="PCP"):
        validate_dscp_table(table)


def test_default_table_is_class_selectors():
    """
    The default maps PCP n to class selector CSn (DSCP 8n).
    """
    assert validate_dscp_table(DEFAULT_PCP_TO_DSCP) == tuple(8 * pcp for pcp in range(8))
