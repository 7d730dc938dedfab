"""
Test frames built by scapy, an encoder independent of roaming.
"""

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether

__all__ = ["arp_request", "tagged_udp", "udp_frame"]

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def udp_frame(payload: bytes = b"roaming", *, tos: int = 0, src: str = MAC_A, dst: str = MAC_B):
    """
    Return an Ethernet frame carrying an IPv4 UDP datagram.
    """
    packet = (
        Ether(src=src, dst=dst)
        / IP(src="10.1.0.1", dst="10.1.0.2", tos=tos)
        / UDP(sport=5000, dport=6000)
        / payload
    )
    return bytes(packet)


def tagged_udp(vlan: int, priority: int, *, tos: int = 0) -> bytes:
    """
    Return an 802.1Q-tagged Ethernet frame carrying an IPv4 UDP datagram.
    """
    packet = (
        Ether(src=MAC_A, dst=MAC_B)
        / Dot1Q(vlan=vlan, prio=priority)
        / IP(src="10.1.0.1", dst="10.1.0.2", tos=tos)
        / UDP(sport=5000, dport=6000)
        / b"tagged"
    )
    return bytes(packet)


def arp_request(*, priority: int | None = None) -> bytes:
    """
    Return a broadcast ARP request, 802.1Q-tagged on VLAN 0 with
    C{priority} if one is given.
    """
    ether = Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff")
    arp = ARP(op=1, hwsrc=MAC_A, psrc="10.1.0.1", pdst="10.1.0.2")
    if priority is None:
        return bytes(ether / arp)
    return bytes(ether / Dot1Q(vlan=0, prio=priority) / arp)


def icmp_echo() -> bytes:
    """
    Return an Ethernet frame carrying an ICMP echo request.
    """
    return bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="10.1.0.1", dst="10.1.0.2") / ICMP())
