# -*- test-case-name: tests.codec -*-
"""
Sans-IO parsers and builders for the wire formats that roaming handles.

One module per format, each with C{parse_*} and C{build_*} functions over
frozen dataclasses: L{ethernet} (with VLAN tags), L{arp}, L{ipv4}, L{udp},
L{dhcp}, L{igmp}, L{icmp}, L{llc} (with the XID layer 2 update), L{ipv6}
(with ICMPv6), and L{gre}.  L{decode} walks a whole frame through them.

Every parser raises L{roaming.errors.DecodeError} and nothing else for
malformed input.  See docs/codecs.md for the limits of each codec.
"""

__all__: list[str] = []
