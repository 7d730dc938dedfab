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
 - a number more than C{window} behind is stale: it is dropped too, so an
   old packet replayed long after it was sent is not delivered again.

A sender that restarts (for example a rebooted peer that starts again at 0)
sends nothing but stale numbers. The receiver follows it after
C{resync_after} stale packets in a row whose numbers are consecutive: the
last packet of such a run is accepted and the receiver continues from it,
counting a resynchronization. Every accepted packet and every number that
breaks the run starts the count again, so while the real sender is live,
replayed old packets never complete a run. Only a run of C{resync_after}
consecutive old packets replayed while the sender is silent gets through,
from its last packet on; GRE has no authentication, and a host that can
send such packets can as well send new ones with numbers ahead of the
receiver. L{SequenceReceiver.reset} (the endpoint calls it when a tunnel's
keepalives change its state) makes the next number acceptable at once.

Numbers skipped by a jump ahead are counted as lost; they are not waited for.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_RESYNC_AFTER",
    "DEFAULT_WINDOW",
    "SequenceReceiver",
    "SequenceVerdict",
    "serial_less_than",
]

import enum

DEFAULT_WINDOW = 64
DEFAULT_RESYNC_AFTER = 8
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
    STALE = "stale"
    """More than the window behind the last accepted number."""
    RESYNCHRONIZED = "resynchronized"
    """Accepted as the end of a run of consecutive stale numbers, from a
    restarted sender."""


class SequenceReceiver:
    """
    The receive-side sequence state of one tunnel.

    @ivar last: the last accepted number, or C{None} before the first packet.
    @ivar lost: count of numbers skipped by jumps ahead.
    @ivar resync_after: the length of a run of consecutive stale numbers
        that the receiver follows.
    """

    __slots__ = ("_mask", "_run", "_run_next", "_seen", "last", "lost", "resync_after", "window")

    def __init__(
        self, window: int = DEFAULT_WINDOW, resync_after: int = DEFAULT_RESYNC_AFTER
    ) -> None:
        if not 1 <= window < _HALF:
            raise ValueError(f"sequence window {window!r} must be between 1 and 2**31 - 1")
        if resync_after < 2:
            raise ValueError(
                f"resynchronization run {resync_after!r} must be at least 2 packets, "
                "so that one old packet is never delivered"
            )
        self.window = window
        self.resync_after = resync_after
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
        # The length of the current run of consecutive stale numbers, and
        # the number that continues it.
        self._run = 0
        self._run_next = 0

    def check(self, sequence: int) -> SequenceVerdict:
        """
        Decide whether the packet numbered C{sequence} is delivered, and
        record it when it is. Call it only for packets that are otherwise
        valid, so that a dropped packet leaves the state alone.
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
            self._run = 0
            return SequenceVerdict.ACCEPT

        behind = (last - sequence) % _MODULUS
        if behind < self.window:
            bit = 1 << behind
            if self._seen & bit:
                return SequenceVerdict.DUPLICATE
            self._seen |= bit
            return SequenceVerdict.OUT_OF_ORDER

        if self._run and sequence == self._run_next:
            self._run += 1
        else:
            self._run = 1
        self._run_next = (sequence + 1) % _MODULUS
        if self._run < self.resync_after:
            return SequenceVerdict.STALE
        self.last = sequence
        self._seen = 1
        self._run = 0
        return SequenceVerdict.RESYNCHRONIZED
