# -*- test-case-name: tests.bridge -*-
"""
Frames for the bridge tests, built with scapy so that every header is laid
out by an implementation independent of roaming.
"""

__all__ = [
    "BROADCAST",
    "arp_request",
    "dhcp",
    "ip_to_int",
    "ipv4_udp",
    "mac",
    "tagged",
]

import ipaddress

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac(text: str) -> bytes:
    """Return the 6 bytes of a colon-separated MAC address."""
    return bytes.fromhex(text.replace(":", ""))


def ip_to_int(text: str) -> int:
    """Return an IPv4 address in dotted-quad notation as an C{int}."""
    return int(ipaddress.IPv4Address(text))


def ipv4_udp(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, payload: bytes = b"data"
) -> bytes:
    """Return an Ethernet frame carrying a UDP datagram between ports 5000 and 5001."""
    frame = (
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip)
        / UDP(sport=5000, dport=5001)
        / Raw(payload)
    )
    return bytes(frame)


def arp_request(src_mac: str, sender_ip: str, target_ip: str, *, dst_mac: str = BROADCAST) -> bytes:
    """Return an ARP request for C{target_ip} from C{sender_ip}."""
    return bytes(
        Ether(src=src_mac, dst=dst_mac)
        / ARP(op=1, hwsrc=src_mac, psrc=sender_ip, hwdst="00:00:00:00:00:00", pdst=target_ip)
    )


def dhcp(
    src_mac: str,
    message_type: str,
    *,
    src_ip: str = "0.0.0.0",
    dst_ip: str = "255.255.255.255",
    dst_mac: str = BROADCAST,
    ciaddr: str = "0.0.0.0",
    requested: str | None = None,
    server_id: str | None = None,
) -> bytes:
    """
    Return a DHCP message from a client (UDP port 68 to 67) with option 53
    set to C{message_type}, such as C{"discover"} or C{"request"}, and
    options 50 (C{requested}) and 54 (C{server_id}) when given.
    """
    options: list = [("message-type", message_type)]
    if requested is not None:
        options.append(("requested_addr", requested))
    if server_id is not None:
        options.append(("server_id", server_id))
    options.append("end")
    frame = (
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip)
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac(src_mac) + bytes(10), ciaddr=ciaddr, xid=0x1234)
        / DHCP(options=options)
    )
    return bytes(frame)


def tagged(frame: bytes, *vlans: int, outer_tpid: int = 0x88A8) -> bytes:
    """
    Return C{frame} with VLAN tags inserted after the addresses: one 802.1Q
    tag for one VLAN, or an 802.1ad S-tag (TPID C{outer_tpid}) then an
    802.1Q C-tag for two.
    """
    ether = Ether(frame)
    inner: Packet = ether.payload
    tags: Packet | None = None
    if len(vlans) == 1:
        tags = Dot1Q(vlan=vlans[0])
    elif len(vlans) == 2:
        tags = Dot1AD(vlan=vlans[0]) / Dot1Q(vlan=vlans[1])
        if outer_tpid != 0x88A8:
            ether = Ether(src=ether.src, dst=ether.dst, type=outer_tpid)
            return bytes(ether / Dot1Q(vlan=vlans[0]) / Dot1Q(vlan=vlans[1]) / inner)
    else:
        raise ValueError(f"give one or two VLAN IDs, got {vlans!r}")
    return bytes(Ether(src=ether.src, dst=ether.dst) / tags / inner)
