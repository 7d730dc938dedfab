# -*- test-case-name: tests.tunnel.test_key -*-
"""
The layout of the 32-bit GRE key that roaming sends on every tunnel.

The key tells the receiving end which virtual service community (VSC) a
frame belongs to, so that it floods broadcasts only into that VSC, and
whether the VSC is access-controlled, because access-controlled and open
VSCs share one tunnel between two devices::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |A|  Reserved   |                    VSC id                     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

 - A (bit 31, the most significant bit): set when the VSC is
   access-controlled.
 - Reserved (bits 30 to 24): sent as zero. A receiver rejects a key with
   any of them set, because a peer that sets them uses a layout this code
   does not know, and guessing could grant an open VSC's treatment to an
   access-controlled frame.
 - VSC id (bits 23 to 0): the VSC, 0 to 16777215.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_CONTROLLED_BIT",
    "MAX_VSC_ID",
    "RESERVED_KEY_BITS",
    "TunnelKey",
    "pack_key",
    "unpack_key",
]

from typing import NamedTuple

from roaming.errors import DecodeError

ACCESS_CONTROLLED_BIT = 0x80000000
RESERVED_KEY_BITS = 0x7F000000
MAX_VSC_ID = 0x00FFFFFF


class TunnelKey(NamedTuple):
    """
    The fields of a GRE key.
    """

    vsc_id: int
    """Virtual service community id, 0 to L{MAX_VSC_ID}."""

    access_controlled: bool = False
    """Whether the VSC is access-controlled."""


def pack_key(vsc_id: int, access_controlled: bool = False) -> int:
    """
    Pack a VSC id and the access-controlled flag into a 32-bit GRE key.

    @raise ValueError: when C{vsc_id} is outside 0 to L{MAX_VSC_ID}.
    """
    if not 0 <= vsc_id <= MAX_VSC_ID:
        raise ValueError(f"VSC id {vsc_id!r} is outside 0 to {MAX_VSC_ID}: use a 24-bit value")
    return vsc_id | (ACCESS_CONTROLLED_BIT if access_controlled else 0)


def unpack_key(key: int) -> TunnelKey:
    """
    Split a received 32-bit GRE key into its fields.

    @raise DecodeError: when a reserved bit is set.
    """
    if key & RESERVED_KEY_BITS:
        raise DecodeError(
            "gre", f"reserved bits set in key 0x{key:08x}: the peer uses another key layout"
        )
    return TunnelKey(key & MAX_VSC_ID, bool(key & ACCESS_CONTROLLED_BIT))
