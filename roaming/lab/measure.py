# -*- test-case-name: tests.lab.test_measure -*-
"""
Per-roam figures computed from a client's probe record.

The interruption of a roam is the time between the last probe echo that
arrived through the old AP and the first echo that arrived through the new
one. The lab moves the client's link at a known instant (C{moved_ns}):
before it, the client is attached only to the old AP's cell, and after it
only to the new AP's, so an echo received at or before C{moved_ns} came
through the old AP and one received after it came through the new AP. This
is the roaming delay as the time between the last packet acknowledged at
the old AP and the first acknowledged at the new AP.

Echoes are discrete, so a roam with no loss at all still measures about
one probe interval (1 ms at 1000 probes per second): the figure is an upper
bound, with a resolution of one interval.

Each roam owns a window of probes, from halfway between the previous move
and its own to halfway between its own and the next; C{sent} and C{lost}
count the probes sent in that window and those never echoed.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "RESTORED_FRACTION",
    "RoamFigures",
    "measure_roam",
    "percentile",
    "roam_windows",
    "summarize",
]


#: Share of the probes at the end of a roam's window that must be echoed for
#: the roam to count as having restored connectivity.
RESTORED_FRACTION = 0.9


@dataclass(frozen=True)
class RoamFigures:
    """
    Cost of one roam to one client.

    @ivar interruption_ms: see the module docstring; L{None} when no echo
        arrived through the new AP in the window, so connectivity was not
        restored.
    @ivar last_old_ns: arrival time of the last echo through the old AP,
        or L{None} if there was none.
    @ivar first_new_ns: arrival time of the first echo through the new AP.
    @ivar tail_answered: share of the probes sent in the last tenth of the
        window that were echoed.
    """

    interruption_ms: float | None
    lost: int
    sent: int
    last_old_ns: int | None
    first_new_ns: int | None

    tail_answered: float = 1.0

    @property
    def restored(self) -> bool:
        """
        Whether connectivity came back through the new AP and stayed: an
        echo arrived through it, and at least L{RESTORED_FRACTION} of the
        probes sent in the last tenth of the window were echoed.
        """
        return self.first_new_ns is not None and self.tail_answered >= RESTORED_FRACTION


def roam_windows(moves_ns: Sequence[int], start_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """
    Return each roam's probe window C{(begin, end)}, in nanoseconds.

    @param moves_ns: the move instants, in increasing order.
    @param start_ns: when the probes started.
    @param end_ns: when the probes stopped.
    """
    bounds = [start_ns]
    for earlier, later in itertools.pairwise(moves_ns):
        bounds.append((earlier + later) // 2)
    bounds.append(end_ns)
    return list(itertools.pairwise(bounds))


def measure_roam(
    send_ns: Sequence[int],
    echo_ns: Sequence[int],
    moved_ns: int,
    window: tuple[int, int],
) -> RoamFigures:
    """
    Measure one roam from a client's probe record.

    @param send_ns: send time of each probe, increasing.
    @param echo_ns: arrival time of each probe's echo, 0 if none came.
    @param moved_ns: when the lab moved the client's link.
    @param window: the roam's probe window from L{roam_windows}.
    """
    begin, end = window
    first = bisect.bisect_left(send_ns, begin)
    stop = bisect.bisect_left(send_ns, end)

    last_old = None
    first_new = None
    lost = 0
    for index in range(first, stop):
        arrived = echo_ns[index]
        if arrived == 0:
            lost += 1
        elif arrived <= moved_ns:
            last_old = arrived if last_old is None else max(last_old, arrived)
        else:
            first_new = arrived if first_new is None else min(first_new, arrived)

    # An old-AP echo can belong to a probe sent before the window; look back
    # so the interruption starts at the true last echo.
    if last_old is None:
        last_old = _last_echo_before(send_ns, echo_ns, first, moved_ns)

    interruption = None
    if first_new is not None and last_old is not None:
        interruption = (first_new - last_old) / 1e6
    tail = range(bisect.bisect_left(send_ns, end - (end - begin) // 10), stop)
    tail_answered = sum(1 for index in tail if echo_ns[index]) / len(tail) if tail else 0.0
    return RoamFigures(interruption, lost, stop - first, last_old, first_new, tail_answered)


def _last_echo_before(
    send_ns: Sequence[int], echo_ns: Sequence[int], first: int, moved_ns: int
) -> int | None:
    for index in range(first - 1, -1, -1):
        arrived = echo_ns[index]
        if 0 < arrived <= moved_ns:
            return arrived
    return None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """
    Return the C{fraction} quantile of C{values} by the nearest-rank method,
    or L{None} for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(figures: Sequence[RoamFigures]) -> dict:
    """
    Return the summary of many roams: nearest-rank p50 and p99, maximum of
    the interruptions of the roams that restored connectivity, and the
    total of probes lost and sent.
    """
    interruptions = [item.interruption_ms for item in figures if item.restored]
    return {
        "roams": len(figures),
        "restored": sum(1 for item in figures if item.restored),
        "p50_interruption_ms": percentile(interruptions, 0.50),
        "p99_interruption_ms": percentile(interruptions, 0.99),
        "max_interruption_ms": max(interruptions) if interruptions else None,
        "lost": sum(item.lost for item in figures),
        "sent": sum(item.sent for item in figures),
    }
