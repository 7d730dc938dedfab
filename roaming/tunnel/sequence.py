# -*- test-case-name: tests.tunnel.test_sequence -*-
"""
GRE sequence numbers (RFC 2890 section 2.2) with serial-number arithmetic
(RFC 1982).

Theory of operation: the sender numbers the packets of a tunnel 0, 1, 2, ...
and wraps from 2**32 - 1 to 0. The receiver delivers a packet only when its
number comes after the last delivered one in RFC 1982 order, so delivery
stays in order across the wrap. It does not buffer to restore order (RFC
2890 section 2.2 allows a receiver to skip buffering), so a late packet is
dropped and counted:

 - a number equal to one delivered within the last C{window} numbers is a
   duplicate;
 - any other number up to C{window} behind the last delivered one is out of
   order;
 - a number more than C{window} behind is taken as a restarted sender (for
   example a rebooted peer that starts again at 0): the receiver accepts it
   and continues from there, counting a resynchronization.

Numbers skipped by a jump ahead are counted as lost; they are not waited for.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_WINDOW",
    "SequenceReceiver",
    "SequenceVerdict",
    "serial_less_than",
]

import enum

DEFAULT_WINDOW = 64
_MODULUS = 1 << 32
_HALF = 1 << 31


def serial_less_than(first: int, second: int) -> bool:
    """
    Compare two 32-bit serial numbers as RFC 1982 section 3.2 defines.

    Two numbers exactly 2**31 apart are not comparable; the function returns
    False for them in both orders.
    """
    difference = (second - first) % _MODULUS
    return 0 < difference < _HALF


class SequenceVerdict(enum.Enum):
    """
    The decision of L{SequenceReceiver.check} about one sequence number.
    """

    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out-of-order"
    RESYNCHRONIZED = "resynchronized"
    """Accepted as the first packet of a restarted sender."""


class SequenceReceiver:
    """
    The receive-side sequence state of one tunnel.

    @ivar last: the last accepted number, or C{None} before the first packet.
    @ivar lost: count of numbers skipped by jumps ahead.
    """

    __slots__ = ("_mask", "_seen", "last", "lost", "window")

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if not 1 <= window < _HALF:
            raise ValueError(f"sequence window {window!r} must be between 1 and 2**31 - 1")
        self.window = window
        self._mask = (1 << window) - 1
        self.reset()
        self.lost = 0

    def reset(self) -> None:
        """
        Forget the last accepted number, so that the next packet is accepted
        whatever its number.
        """
        self.last: int | None = None
        # Bit i is set when the number last - i has been accepted.
        self._seen = 0

    def check(self, sequence: int) -> SequenceVerdict:
        """
        Decide whether the packet numbered C{sequence} is delivered, and
        record it when it is.
        """
        last = self.last
        if last is None:
            self.last = sequence
            self._seen = 1
            return SequenceVerdict.ACCEPT

        ahead = (sequence - last) % _MODULUS
        if 0 < ahead < _HALF:
            self.lost += ahead - 1
            self._seen = ((self._seen << ahead) | 1) & self._mask
            self.last = sequence
            return SequenceVerdict.ACCEPT

        behind = (last - sequence) % _MODULUS
        if behind < self.window:
            bit = 1 << behind
            if self._seen & bit:
                return SequenceVerdict.DUPLICATE
            self._seen |= bit
            return SequenceVerdict.OUT_OF_ORDER

        self.last = sequence
        self._seen = 1
        return SequenceVerdict.RESYNCHRONIZED
