# -*- test-case-name: tests.tunnel.test_qos -*-
"""
The TOS byte of the outer IPv4 header, taken from the frame being tunneled.

 - Inner IPv4: the inner TOS byte (DSCP and ECN) is copied unchanged.
 - Inner IPv6: the inner traffic class is copied unchanged.
 - Anything else (ARP, IPX, a truncated IP header): the 802.1p priority
   code point (PCP) of the outer-most VLAN tag, or 0 when the frame is
   untagged, is mapped to a DSCP through a table of eight entries, and ECN
   is 0 (Not-ECT).

VLAN tags (TPIDs 0x8100, 0x88A8 and 0x9100) are skipped to find the
EtherType of the payload, up to L{MAX_VLAN_TAGS} of them.

The default table, L{DEFAULT_PCP_TO_DSCP}, maps PCP n to the class selector
codepoint CSn (DSCP 8 * n, RFC 2474 section 4.2.2.1), which keeps the
order of the eight priorities, including PCP 1 (background) below PCP 0
(best effort) because CS1 is the low-priority class of RFC 4594::

    PCP   0  1  2  3  4  5  6  7
    DSCP  0  8 16 24 32 40 48 56
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PCP_TO_DSCP",
    "MAX_VLAN_TAGS",
    "VLAN_TPIDS",
    "OuterTos",
    "validate_dscp_table",
]

import struct
from collections.abc import Sequence

VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
MAX_VLAN_TAGS = 4
DEFAULT_PCP_TO_DSCP = (0, 8, 16, 24, 32, 40, 48, 56)

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_SHORT = struct.Struct("!H")


def validate_dscp_table(table: Sequence[int]) -> tuple[int, ...]:
    """
    Check a PCP-to-DSCP table and return it as a tuple.

    @raise ValueError: unless the table has eight DSCPs between 0 and 63.
    """
    values = tuple(table)
    if len(values) != 8:
        raise ValueError(f"PCP-to-DSCP table has {len(values)} entries: give one DSCP per PCP 0-7")
    for pcp, dscp in enumerate(values):
        if not 0 <= dscp <= 63:
            raise ValueError(f"DSCP {dscp!r} for PCP {pcp} is outside 0 to 63")
    return values


class OuterTos:
    """
    Compute the outer TOS byte of tunneled frames.

    @ivar pcp_to_tos: the TOS byte (DSCP shifted left by 2, ECN 0) for each
        PCP.
    """

    __slots__ = ("pcp_to_tos",)

    def __init__(self, pcp_to_dscp: Sequence[int] = DEFAULT_PCP_TO_DSCP) -> None:
        self.pcp_to_tos = tuple(dscp << 2 for dscp in validate_dscp_table(pcp_to_dscp))

    def tos_for_frame(self, frame: bytes) -> int:
        """
        Return the outer TOS byte for an Ethernet frame, as the module
        docstring describes. Frames too short to hold an EtherType get the
        TOS of PCP 0.
        """
        length = len(frame)
        if length < 14:
            return self.pcp_to_tos[0]
        offset = 12
        ethertype = _SHORT.unpack_from(frame, 12)[0]
        pcp = -1
        tags = 0
        while ethertype in VLAN_TPIDS and tags < MAX_VLAN_TAGS and offset + 6 <= length:
            if pcp < 0:
                pcp = frame[offset + 2] >> 5
            ethertype = _SHORT.unpack_from(frame, offset + 4)[0]
            offset += 4
            tags += 1
        offset += 2

        if ethertype == _ETHERTYPE_IPV4 and offset + 2 <= length and frame[offset] >> 4 == 4:
            return frame[offset + 1]
        if ethertype == _ETHERTYPE_IPV6 and offset + 2 <= length and frame[offset] >> 4 == 6:
            return ((frame[offset] & 0x0F) << 4) | (frame[offset + 1] >> 4)
        return self.pcp_to_tos[pcp if pcp > 0 else 0]
