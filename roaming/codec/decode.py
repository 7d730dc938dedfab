# -*- test-case-name: tests.codec.test_decode -*-
"""
Decode a whole frame into its stack of layers, for tests, roamctl and
debugging tools.

This is not the forwarding path: it parses every layer that roaming decodes
into dataclasses, which cost 9 to 15 microseconds a frame in a measurement on a
2-vCPU machine (docs/codecs.md).  The bridge has its own classifier for that.
"""

__all__ = ["DecodedFrame", "decode_frame"]

import ipaddress
from dataclasses import dataclass, fields

from roaming.codec.arp import ArpOperation, ArpPacket, parse_arp
from roaming.codec.dhcp import CLIENT_PORT, SERVER_PORT, DhcpMessage, DhcpMessageType, parse_dhcp
from roaming.codec.ethernet import EthernetFrame, EtherType, format_mac, parse_ethernet
from roaming.codec.icmp import IcmpPacket, parse_icmp
from roaming.codec.igmp import IgmpPacket, parse_igmp
from roaming.codec.ipv4 import IpProtocol, Ipv4Packet, parse_ipv4
from roaming.codec.ipv6 import (
    Icmpv6Message,
    Ipv6Chain,
    Ipv6Packet,
    parse_icmpv6,
    parse_ipv6,
    walk_extension_headers,
)
from roaming.codec.llc import Layer2Update, LlcPdu, parse_layer2_update, parse_llc
from roaming.codec.udp import UdpDatagram, parse_udp
from roaming.errors import DecodeError

_DHCP_PORTS = frozenset({SERVER_PORT, CLIENT_PORT})
_DHCP_TYPE_NAMES = {member.value: member.name for member in DhcpMessageType}


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """
    The layers of one frame.  A layer that the frame does not carry, or
    that was not decoded, is C{None}.
    """

    ethernet: EthernetFrame
    llc: LlcPdu | None = None
    layer2_update: Layer2Update | None = None
    arp: ArpPacket | None = None
    ipv4: Ipv4Packet | None = None
    ipv6: Ipv6Packet | None = None
    ipv6_chain: Ipv6Chain | None = None
    udp: UdpDatagram | None = None
    dhcp: DhcpMessage | None = None
    igmp: IgmpPacket | None = None
    icmp: IcmpPacket | None = None
    icmpv6: Icmpv6Message | None = None

    @property
    def layers(self) -> tuple[object, ...]:
        """The decoded layers, outermost first."""
        return tuple(
            value
            for value in (getattr(self, item.name) for item in fields(self))
            if value is not None
        )

    def summary(self) -> str:
        """
        Describe the frame in one line, such as
        C{"02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff vlan 20 IPv4 0.0.0.0 > 255.255.255.255
        UDP 68 > 67 DHCP REQUEST"}.
        """
        frame = self.ethernet
        words = [format_mac(frame.source), ">", format_mac(frame.destination)]
        words += [f"vlan {tag.vlan_id}" for tag in frame.tags]
        words += _describe_network(self)
        return " ".join(words)


def decode_frame(frame: bytes, *, verify_checksums: bool = True) -> DecodedFrame:
    """
    Parse C{frame} layer by layer as far as roaming's codecs reach.

    Upper layers of IPv4 and IPv6 fragments are not decoded, because a
    fragment carries only part of them.  A UDP datagram is decoded as DHCP
    when both ports are 67 or 68.

    @param verify_checksums: verify the IPv4, UDP, ICMP, IGMP and ICMPv6
        checksums.
    @raise DecodeError: any layer is malformed; C{protocol} names the layer.
    """
    ethernet = parse_ethernet(frame)
    if ethernet.ethertype is None:
        return _decode_llc(ethernet)
    if ethernet.ethertype == EtherType.ARP:
        return DecodedFrame(ethernet, arp=parse_arp(ethernet.payload))
    if ethernet.ethertype == EtherType.IPV4:
        return _decode_ipv4(ethernet, verify_checksums)
    if ethernet.ethertype == EtherType.IPV6:
        return _decode_ipv6(ethernet, verify_checksums)
    return DecodedFrame(ethernet)


def _decode_llc(ethernet: EthernetFrame) -> DecodedFrame:
    llc = parse_llc(ethernet.payload)
    try:
        update = parse_layer2_update(ethernet)
    except DecodeError:
        # Any other LLC frame is valid too; it just is not an update.
        update = None
    return DecodedFrame(ethernet, llc=llc, layer2_update=update)


def _decode_ipv4(ethernet: EthernetFrame, verify: bool) -> DecodedFrame:
    packet = parse_ipv4(ethernet.payload, verify_checksum=verify)
    if packet.is_fragment:
        return DecodedFrame(ethernet, ipv4=packet)

    if packet.protocol == IpProtocol.UDP:
        if verify:
            datagram = parse_udp(packet.payload, packet.source, packet.destination)
        else:
            datagram = parse_udp(packet.payload)
        dhcp = None
        if datagram.source_port in _DHCP_PORTS and datagram.destination_port in _DHCP_PORTS:
            dhcp = parse_dhcp(datagram.payload)
        return DecodedFrame(ethernet, ipv4=packet, udp=datagram, dhcp=dhcp)
    if packet.protocol == IpProtocol.IGMP:
        igmp = parse_igmp(packet.payload, verify_checksum=verify)
        return DecodedFrame(ethernet, ipv4=packet, igmp=igmp)
    if packet.protocol == IpProtocol.ICMP:
        icmp = parse_icmp(packet.payload, verify_checksum=verify)
        return DecodedFrame(ethernet, ipv4=packet, icmp=icmp)
    return DecodedFrame(ethernet, ipv4=packet)


def _decode_ipv6(ethernet: EthernetFrame, verify: bool) -> DecodedFrame:
    packet = parse_ipv6(ethernet.payload)
    chain = walk_extension_headers(packet)
    icmpv6 = None
    if chain.protocol == IpProtocol.IPV6_ICMP and not chain.is_fragment:
        if verify:
            icmpv6 = parse_icmpv6(chain.upper_layer, packet.source, packet.destination)
        else:
            icmpv6 = parse_icmpv6(chain.upper_layer)
    return DecodedFrame(ethernet, ipv6=packet, ipv6_chain=chain, icmpv6=icmpv6)


def _describe_network(decoded: DecodedFrame) -> list[str]:
    if decoded.layer2_update is not None:
        return ["LLC XID layer 2 update"]
    if decoded.llc is not None:
        return [f"LLC dsap 0x{decoded.llc.dsap:02x} ssap 0x{decoded.llc.ssap:02x}"]
    if decoded.arp is not None:
        return _describe_arp(decoded.arp)
    if decoded.ipv4 is not None:
        return _describe_ipv4(decoded)
    if decoded.ipv6 is not None:
        return _describe_ipv6(decoded)
    return [f"ethertype 0x{decoded.ethernet.ethertype:04x}"]


def _describe_arp(arp: ArpPacket) -> list[str]:
    operation = ArpOperation(arp.operation).name
    return ["ARP", operation, _ipv4_text(arp.sender_ip), ">", _ipv4_text(arp.target_ip)]


def _describe_ipv4(decoded: DecodedFrame) -> list[str]:
    packet = decoded.ipv4
    words = ["IPv4", _ipv4_text(packet.source), ">", _ipv4_text(packet.destination)]
    if packet.is_fragment:
        words.append(f"fragment offset {packet.fragment_offset * 8}")
    if decoded.udp is not None:
        words += ["UDP", str(decoded.udp.source_port), ">", str(decoded.udp.destination_port)]
    if decoded.dhcp is not None:
        message_type = decoded.dhcp.message_type
        if message_type is None:
            words.append("BOOTP")
        else:
            words += ["DHCP", _DHCP_TYPE_NAMES.get(message_type, f"type {message_type}")]
    if decoded.igmp is not None:
        words += ["IGMP", f"type 0x{decoded.igmp.type:02x}"]
    if decoded.icmp is not None:
        words += ["ICMP", f"type {decoded.icmp.type}"]
    if not (decoded.udp or decoded.igmp or decoded.icmp) and not packet.is_fragment:
        words.append(f"protocol {packet.protocol}")
    return words


def _describe_ipv6(decoded: DecodedFrame) -> list[str]:
    packet = decoded.ipv6
    words = [
        "IPv6",
        str(ipaddress.IPv6Address(packet.source)),
        ">",
        str(ipaddress.IPv6Address(packet.destination)),
    ]
    if decoded.icmpv6 is not None:
        ndp = decoded.icmpv6.ndp_type
        words += ["ICMPv6", ndp.name if ndp is not None else f"type {decoded.icmpv6.type}"]
    else:
        words.append(f"protocol {decoded.ipv6_chain.protocol}")
    return words


def _ipv4_text(address: int) -> str:
    return str(ipaddress.IPv4Address(address))
