# -*- test-case-name: tests.bridge.test_classify -*-
"""
The bridge's per-frame classifier: the few layer-3 facts that learning needs.

The bridge stays a layer-2 device, so it reads only what its learning rules
use: the innermost EtherType after any VLAN tags, the sender's IPv4 address
(the IPv4 source address, or the ARP sender protocol address), and for a
DHCP message from a client its message type and the address the client
claims as its own, or for a rebooting client the address it asks to keep.

This runs for every frame the bridge must inspect, so it is written by hand
with precompiled C{struct.Struct} objects and integer addresses, one unpack
per header, instead of with L{roaming.codec}.  It raises
L{roaming.errors.DecodeError} and nothing else for a malformed header.
"""

__all__ = [
    "DHCP_DISCOVER",
    "DHCP_REQUEST",
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "MAX_VLAN_TAGS",
    "VLAN_ETHERTYPES",
    "DhcpMessageType",
    "classify",
]

import struct
from enum import IntEnum

from roaming.errors import DecodeError

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806

VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
"""
Tag protocol identifiers that the classifier skips: 802.1Q C-tag, 802.1ad
S-tag, and 0x9100, which pre-standard QinQ switches still send.
"""

MAX_VLAN_TAGS = 2
"""
Maximum number of tags skipped: an 802.1ad S-tag and an 802.1Q C-tag.  A frame
with more tags is bridged without layer-3 inspection.
"""


class DhcpMessageType(IntEnum):
    """
    Values of DHCP option 53 that the bridge acts on (RFC 2132 section 9.6).
    """

    DISCOVER = 1
    REQUEST = 3


# Plain ints for the comparisons on the per-frame path; IntEnum members
# compare more slowly.
DHCP_DISCOVER = int(DhcpMessageType.DISCOVER)
DHCP_REQUEST = int(DhcpMessageType.REQUEST)

_ETHERNET_HEADER = 14
_ETHERTYPE = struct.Struct("!H")
_ADDRESS = struct.Struct("!I")
_TAG = struct.Struct("!HH")

# Pad bytes ("x") skip the fields the bridge does not use, so each unpack
# builds only the values it needs.

# ARP for Ethernet and IPv4 (RFC 826): hardware type, protocol type, hardware
# and protocol address lengths, then (after opcode and sender MAC) the sender
# IP; the target addresses follow, 28 bytes in all.
_ARP = struct.Struct("!HHBB2x6xI10x")
_ARP_HEAD = struct.Struct("!HHBB2x")
_ARP_HARDWARE_TYPES = frozenset({1, 6})  # Ethernet, IEEE 802 (RFC 5494)

# IPv4 header without options (RFC 791 section 3.1): version and IHL, total
# length, flags and fragment offset, protocol, source address.
_IPV4 = struct.Struct("!Bx H 2x H x B 2x I 4x")
_IPPROTO_UDP = 17
_FRAGMENT_OFFSET_MASK = 0x1FFF

# UDP header (RFC 768): source port, destination port, length.
_UDP = struct.Struct("!HHH2x")
_BOOTPS = 67
_BOOTPC = 68

# BOOTP fixed fields (RFC 2131 section 2): op, then ciaddr at offset 12.
_BOOTP = struct.Struct("!B11xI")
_BOOTREQUEST = 1
_SNAME = (44, 108)
_FILE = (108, 236)
_COOKIE_OFFSET = 236
_OPTIONS_OFFSET = 240
_MAGIC_COOKIE = b"\x63\x82\x53\x63"

# DHCP option codes (RFC 2132 sections 3.1, 3.2, 9.1, 9.3, 9.6 and 9.7).
_OPTION_PAD = 0
_OPTION_END = 255
_OPTION_REQUESTED_ADDRESS = 50
_OPTION_OVERLOAD = 52
_OPTION_MESSAGE_TYPE = 53
_OPTION_SERVER_IDENTIFIER = 54


def classify(frame: bytes) -> tuple[int, int, int, int, int]:
    """
    Extract the layer-3 facts that bridge learning uses from one frame.

    @param frame: an Ethernet frame, starting at the destination address.
    @return: C{(ethertype, sender_ip, dhcp_type, dhcp_client_ip,
        dhcp_requested_ip)}: the innermost EtherType (or 802.3 length) after
        at most L{MAX_VLAN_TAGS} tags; the IPv4 source address of an IPv4
        packet or the sender protocol address of an Ethernet/IPv4 ARP
        request or reply, else 0; the DHCP message type (option 53) of a
        BOOTREQUEST sent from UDP port 68 to port 67, else 0; for a DHCP
        REQUEST, the address the client claims as its own (ciaddr, else the
        IPv4 source address), else 0; and for a DHCP REQUEST that claims no
        address and carries no server identifier (the INIT-REBOOT state of
        RFC 2131 section 4.3.2), the previous address it asks for in option
        50, else 0.
    @raise DecodeError: the frame is shorter than an Ethernet header, or a
        VLAN tag, ARP, IPv4, UDP or DHCP header is truncated or
        inconsistent.
    """
    if len(frame) < _ETHERNET_HEADER:
        raise DecodeError("ethernet", f"frame is {len(frame)} bytes, shorter than 14")
    (ethertype,) = _ETHERTYPE.unpack_from(frame, 12)
    offset = _ETHERNET_HEADER
    tags = 0
    while ethertype in VLAN_ETHERTYPES:
        if tags == MAX_VLAN_TAGS:
            return (ethertype, 0, 0, 0, 0)
        if len(frame) < offset + 4:
            raise DecodeError(
                "vlan", f"tag at offset {offset} is truncated: frame is {len(frame)} bytes"
            )
        ethertype = _TAG.unpack_from(frame, offset)[1]
        offset += 4
        tags += 1

    if ethertype == ETHERTYPE_IPV4:
        return _classify_ipv4(frame, offset)
    if ethertype == ETHERTYPE_ARP:
        return (ethertype, _arp_sender(frame, offset), 0, 0, 0)
    return (ethertype, 0, 0, 0, 0)


def _arp_sender(frame: bytes, offset: int) -> int:
    """
    Return the sender IPv4 address of an Ethernet/IPv4 ARP packet, or 0 for
    ARP of another hardware or protocol type.
    """
    available = len(frame) - offset
    if available >= _ARP.size:
        hardware, protocol, hardware_length, protocol_length, sender = _ARP.unpack_from(
            frame, offset
        )
    elif available >= _ARP_HEAD.size:
        hardware, protocol, hardware_length, protocol_length = _ARP_HEAD.unpack_from(frame, offset)
        sender = None
    else:
        raise DecodeError("arp", f"ARP header is {available} bytes, shorter than 8")

    if (
        hardware not in _ARP_HARDWARE_TYPES
        or protocol != ETHERTYPE_IPV4
        or hardware_length != 6
        or protocol_length != 4
    ):
        return 0
    if sender is None:
        raise DecodeError("arp", f"Ethernet/IPv4 ARP packet is {available} bytes, shorter than 28")
    return sender


def _classify_ipv4(frame: bytes, offset: int) -> tuple[int, int, int, int, int]:
    """
    Classify an IPv4 packet: its source address and, for a DHCP client
    message, the DHCP facts.
    """
    available = len(frame) - offset
    if available < _IPV4.size:
        raise DecodeError("ipv4", f"header is {available} bytes, shorter than 20")
    version_ihl, total_length, fragment, protocol, source = _IPV4.unpack_from(frame, offset)
    header_length = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4:
        raise DecodeError("ipv4", f"version is {version_ihl >> 4}, expected 4")
    # RFC 791 section 3.1: IHL counts 32-bit words and is at least 5; the
    # total length covers header and data, so Ethernet padding is not data.
    if header_length < 20:
        raise DecodeError("ipv4", f"IHL is {version_ihl & 0x0F} words, less than 5")
    if not header_length <= total_length <= available:
        raise DecodeError(
            "ipv4",
            f"total length {total_length} is outside {header_length}..{available} "
            "(header length..bytes present)",
        )
    if protocol != _IPPROTO_UDP or fragment & _FRAGMENT_OFFSET_MASK:
        return (ETHERTYPE_IPV4, source, 0, 0, 0)

    udp = offset + header_length
    end = offset + total_length
    if end - udp < _UDP.size:
        raise DecodeError("udp", f"header is {end - udp} bytes, shorter than 8")
    source_port, destination_port, udp_length = _UDP.unpack_from(frame, udp)
    if source_port != _BOOTPC or destination_port != _BOOTPS:
        return (ETHERTYPE_IPV4, source, 0, 0, 0)
    # RFC 768: the length covers header and data.  A first fragment (More
    # Fragments set) may contain less than the UDP length states.
    if udp_length < _UDP.size:
        raise DecodeError("udp", f"length field is {udp_length}, less than 8")
    end = min(end, udp + udp_length)
    return _classify_dhcp(frame, udp + _UDP.size, end, source)


def _classify_dhcp(
    frame: bytes, start: int, end: int, source: int
) -> tuple[int, int, int, int, int]:
    """
    Classify a DHCP message from a client sent from IPv4 address C{source}.
    A BOOTREPLY, and a BOOTP request without the magic cookie or without
    option 53, carry no DHCP facts.
    """
    if end - start < _OPTIONS_OFFSET:
        raise DecodeError("dhcp", f"message is {end - start} bytes, shorter than 240")
    op, ciaddr = _BOOTP.unpack_from(frame, start)
    if op != _BOOTREQUEST:
        return (ETHERTYPE_IPV4, source, 0, 0, 0)
    cookie = start + _COOKIE_OFFSET
    if frame[cookie : cookie + 4] != _MAGIC_COOKIE:
        return (ETHERTYPE_IPV4, source, 0, 0, 0)

    # The usual message starts with option 53, so look in the options field
    # first and let _find_option follow an overload only when needed.
    value, length, overload = _scan_options(
        frame, start + _OPTIONS_OFFSET, end, _OPTION_MESSAGE_TYPE
    )
    if value < 0 and overload:
        value, length = _find_option(frame, start, end, _OPTION_MESSAGE_TYPE)
    if value < 0:
        # BOOTP uses the same cookie and option format for its vendor
        # extensions (RFC 2132 section 2); only DHCP adds option 53.
        return (ETHERTYPE_IPV4, source, 0, 0, 0)
    if length != 1:
        raise DecodeError("dhcp", f"option 53 is {length} bytes, expected 1")
    # A value the bridge does not act on, 0 included, passes as it is.
    message_type = frame[value]
    if message_type != DHCP_REQUEST:
        return (ETHERTYPE_IPV4, source, message_type, 0, 0)

    client_ip = ciaddr or source
    if client_ip:
        return (ETHERTYPE_IPV4, source, message_type, client_ip, 0)
    # RFC 2131 section 4.3.2: in INIT-REBOOT, ciaddr is 0, option 50 holds
    # the previous address and option 54 (server identifier) is absent.  In
    # SELECTING, option 54 names the server whose offer is taken.
    if _find_option(frame, start, end, _OPTION_SERVER_IDENTIFIER)[0] >= 0:
        return (ETHERTYPE_IPV4, source, message_type, 0, 0)
    value, length = _find_option(frame, start, end, _OPTION_REQUESTED_ADDRESS)
    if value < 0:
        return (ETHERTYPE_IPV4, source, message_type, 0, 0)
    if length != 4:
        raise DecodeError("dhcp", f"option 50 is {length} bytes, expected 4")
    (requested,) = _ADDRESS.unpack_from(frame, value)
    return (ETHERTYPE_IPV4, source, message_type, 0, requested)


def _find_option(frame: bytes, start: int, end: int, code: int) -> tuple[int, int]:
    """
    Return the offset and length of the value of the first option C{code}
    in the DHCP message at C{start}, or C{(-1, 0)} when it is absent.

    RFC 2131 section 4.1: with option 52 (overload), options continue in
    'file' (value 1 or 3) and then in 'sname' (value 2 or 3).
    """
    value, length, overload = _scan_options(frame, start + _OPTIONS_OFFSET, end, code)
    if value < 0 and overload & 1:
        value, length, _ = _scan_options(frame, start + _FILE[0], start + _FILE[1], code)
    if value < 0 and overload & 2:
        value, length, _ = _scan_options(frame, start + _SNAME[0], start + _SNAME[1], code)
    return (value, length)


def _scan_options(frame: bytes, position: int, end: int, code: int) -> tuple[int, int, int]:
    """
    Walk DHCP options from C{position} to C{end} (RFC 2132 section 2) and
    return C{(value offset, value length, overload)} of option C{code}, with
    an offset of -1 when it is absent and an overload of 0 without option 52.

    The walk stops at option C{code}, so the usual message, which starts
    with option 53, costs one step.
    """
    overload = 0
    while position < end:
        option = frame[position]
        if option == _OPTION_PAD:
            position += 1
            continue
        if option == _OPTION_END:
            break
        if position + 2 > end:
            raise DecodeError("dhcp", f"option {option} at offset {position} has no length byte")
        length = frame[position + 1]
        value = position + 2
        if value + length > end:
            raise DecodeError(
                "dhcp", f"option {option} at offset {position} is {length} bytes, past the end"
            )
        if option == code:
            return (value, length, overload)
        if option == _OPTION_OVERLOAD and length == 1:
            overload = frame[value]
        position = value + length
    return (-1, 0, overload)
