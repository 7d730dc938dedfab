# -*- test-case-name: tests.tunnel.test_liveness -*-
"""
Tunnel liveness from keepalives.

Theory of operation: every C{period} seconds the tunnel sends one keepalive
and counts it as unanswered. A reply resets the count. When a keepalive is
due while C{misses} keepalives are already unanswered, the tunnel is down.
The first reply after that, or the first reply ever, brings it up. Each
change of state yields one event, L{TunnelUp} or L{TunnelDown}, for the
daemon to act on. A tunnel starts in L{LinkState.UNKNOWN} and reports no
event until the first reply or the first detected failure.

Transitions (state, input -> new state, event)::

    UNKNOWN  reply             -> UP       TunnelUp
    UNKNOWN  misses exceeded   -> DOWN     TunnelDown
    UP       reply             -> UP       -
    UP       misses exceeded   -> DOWN     TunnelDown
    DOWN     reply             -> UP       TunnelUp
    DOWN     misses exceeded   -> DOWN     -

A down tunnel keeps sending keepalives, so that it comes back up by itself.
"""

from __future__ import annotations

__all__ = ["Keepalive", "LinkState", "TunnelDown", "TunnelUp"]

import enum
from dataclasses import dataclass


class LinkState(enum.Enum):
    """
    Liveness of a tunnel as its keepalives show it.
    """

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class TunnelUp:
    """
    A tunnel replied to a keepalive after being down, or for the first time.
    """

    agg_id: int
    """Aggregation ID of the tunnel."""

    time: float
    """The C{now} at which the reply arrived."""


@dataclass(frozen=True, slots=True)
class TunnelDown:
    """
    A tunnel left C{missed} keepalives in a row unanswered.
    """

    agg_id: int
    """Aggregation ID of the tunnel."""

    time: float
    """The C{now} at which the failure was detected."""

    missed: int
    """Count of unanswered keepalives."""


class Keepalive:
    """
    The keepalive timer and state of one tunnel.

    @ivar state: the current L{LinkState}.
    @ivar next_deadline: when the next keepalive is due, or C{None} before
        the first call to L{poll}, which sends the first one at once.
    @ivar unanswered: count of keepalives sent since the last reply.
    """

    __slots__ = ("agg_id", "misses", "next_deadline", "period", "state", "unanswered")

    def __init__(self, agg_id: int, period: float, misses: int) -> None:
        if not period > 0:
            raise ValueError(f"keepalive period {period!r} must be a positive number of seconds")
        if misses < 1:
            raise ValueError(f"keepalive miss count {misses!r} must be at least 1")
        self.agg_id = agg_id
        self.period = period
        self.misses = misses
        self.state = LinkState.UNKNOWN
        self.next_deadline: float | None = None
        self.unanswered = 0

    def poll(self, now: float) -> tuple[bool, TunnelDown | None]:
        """
        Advance the timer to C{now}.

        @return: whether a keepalive must be sent now, and the L{TunnelDown}
            event when the tunnel has just gone down.
        """
        if self.next_deadline is not None and now < self.next_deadline:
            return False, None

        event = None
        if self.unanswered >= self.misses and self.state is not LinkState.DOWN:
            self.state = LinkState.DOWN
            event = TunnelDown(self.agg_id, now, self.unanswered)

        self.unanswered += 1
        if self.next_deadline is None or now - self.next_deadline >= self.period:
            # First keepalive, or the caller fell behind by more than a
            # period: start the schedule again from now instead of sending a
            # burst to catch up.
            self.next_deadline = now + self.period
        else:
            self.next_deadline += self.period
        return True, event

    def reply_received(self, now: float) -> TunnelUp | None:
        """
        Record a keepalive reply.

        @return: the L{TunnelUp} event when the tunnel has just come up.
        """
        self.unanswered = 0
        if self.state is LinkState.UP:
            return None
        self.state = LinkState.UP
        return TunnelUp(self.agg_id, now)
