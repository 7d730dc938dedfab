# -*- test-case-name: tests.tunnel.test_liveness -*-
"""
Tests for L{roaming.tunnel.liveness}: every transition of the keepalive
state machine, driven by a fake clock.
"""

import pytest

from roaming.tunnel.liveness import Keepalive, LinkState, TunnelDown, TunnelUp


def run_until(keepalive: Keepalive, now: float) -> list:
    """
    Call L{Keepalive.poll} at every deadline up to C{now}; return the
    events and the times keepalives were sent.
    """
    events = []
    sent = []
    for _ in range(1000):
        deadline = keepalive.next_deadline
        if deadline is not None and deadline > now:
            break
        at = 0.0 if deadline is None else deadline
        due, event = keepalive.poll(at)
        if due:
            sent.append(at)
        if event is not None:
            events.append(event)
    return events, sent


def test_first_poll_sends_at_once():
    """
    The first poll sends a keepalive and schedules the next one a period
    later.
    """
    keepalive = Keepalive(agg_id=3, period=10.0, misses=3)

    assert keepalive.poll(5.0) == (True, None)
    assert keepalive.next_deadline == 15.0
    assert keepalive.poll(14.9) == (False, None)
    assert keepalive.state is LinkState.UNKNOWN


def test_unknown_to_up():
    """
    A reply in the unknown state brings the tunnel up with one event.
    """
    keepalive = Keepalive(agg_id=3, period=10.0, misses=3)
    keepalive.poll(0.0)

    assert keepalive.reply_received(0.2) == TunnelUp(3, 0.2)
    assert keepalive.state is LinkState.UP
    assert keepalive.unanswered == 0


def test_up_reply_is_quiet():
    """
    Replies while up raise no event.
    """
    keepalive = Keepalive(agg_id=3, period=10.0, misses=3)
    keepalive.poll(0.0)
    keepalive.reply_received(0.1)

    assert keepalive.reply_received(10.1) is None
    assert keepalive.state is LinkState.UP


def test_unknown_to_down():
    """
    Without replies, the tunnel goes down when the keepalive after the
    C{misses}-th unanswered one is due.
    """
    keepalive = Keepalive(agg_id=4, period=10.0, misses=3)

    events, sent = run_until(keepalive, 29.0)
    assert events == []
    assert sent == [0.0, 10.0, 20.0]

    events, sent = run_until(keepalive, 30.0)
    assert events == [TunnelDown(4, 30.0, 3)]
    assert keepalive.state is LinkState.DOWN


def test_up_to_down_to_up():
    """
    An up tunnel that stops replying goes down once, keeps probing, and
    comes back up at the next reply.
    """
    keepalive = Keepalive(agg_id=5, period=1.0, misses=2)
    keepalive.poll(0.0)
    keepalive.reply_received(0.1)

    events, sent = run_until(keepalive, 3.5)
    assert sent == [1.0, 2.0, 3.0]
    assert events == [TunnelDown(5, 3.0, 2)]

    events, sent = run_until(keepalive, 6.5)
    assert events == []
    assert sent == [4.0, 5.0, 6.0]
    assert keepalive.state is LinkState.DOWN

    assert keepalive.reply_received(6.6) == TunnelUp(5, 6.6)
    assert keepalive.state is LinkState.UP


def test_late_poll_restarts_schedule():
    """
    A poll more than a period late sends one keepalive and schedules the
    next from then, instead of a burst.
    """
    keepalive = Keepalive(agg_id=1, period=1.0, misses=100)
    keepalive.poll(0.0)

    assert keepalive.poll(10.0) == (True, None)
    assert keepalive.next_deadline == 11.0
    assert keepalive.poll(10.5) == (False, None)


@pytest.mark.parametrize(("period", "misses"), [(0.0, 3), (-1.0, 3), (1.0, 0)])
def test_invalid_configuration(period, misses):
    """
    A non-positive period or a miss count below 1 raises L{ValueError}.
    """
    with pytest.raises(ValueError, match="keepalive"):
        Keepalive(agg_id=1, period=period, misses=misses)
