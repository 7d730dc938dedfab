# -*- test-case-name: tests.tunnel.test_sequence -*-
"""
Tests for L{roaming.tunnel.sequence}: RFC 1982 comparison and the receive
window, across the wrap from 2**32 - 1 to 0.
"""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roaming.tunnel.sequence import SequenceReceiver, SequenceVerdict, serial_less_than

TOP = 0xFFFF_FFFF


@pytest.mark.parametrize(
    ("first", "second"),
    [(0, 1), (TOP, 0), (TOP - 5, 3), (0, (1 << 31) - 1), (1 << 31, TOP), (100, 200)],
)
def test_serial_order(first, second):
    """
    RFC 1982 section 3.2: C{first} comes before C{second}, and not the
    other way round.
    """
    assert serial_less_than(first, second)
    assert not serial_less_than(second, first)


def test_serial_undefined_pair():
    """
    Numbers exactly 2**31 apart are not ordered either way (RFC 1982
    section 3.2).
    """
    assert not serial_less_than(0, 1 << 31)
    assert not serial_less_than(1 << 31, 0)


def test_serial_equal():
    """
    A number does not come before itself.
    """
    assert not serial_less_than(7, 7)


@given(st.integers(0, TOP), st.integers(1, (1 << 31) - 1))
def test_serial_shift(base, step):
    """
    Adding less than 2**31 modulo 2**32 always gives a later number.
    """
    assert serial_less_than(base, (base + step) % (1 << 32))


def test_wrap_in_order():
    """
    2**32 - 2, 2**32 - 1, 0, 1 are accepted in order.
    """
    receiver = SequenceReceiver()

    verdicts = [receiver.check(number) for number in (TOP - 1, TOP, 0, 1)]

    assert verdicts == [SequenceVerdict.ACCEPT] * 4
    assert receiver.last == 1
    assert receiver.lost == 0


def test_duplicate_across_wrap():
    """
    A repeated number just before the wrap is a duplicate after it.
    """
    receiver = SequenceReceiver()
    for number in (TOP, 0, 1):
        receiver.check(number)

    assert receiver.check(TOP) is SequenceVerdict.DUPLICATE
    assert receiver.check(1) is SequenceVerdict.DUPLICATE
    assert receiver.last == 1


def test_out_of_order_dropped_once():
    """
    A late number never seen is out of order; a second copy of it is a
    duplicate.
    """
    receiver = SequenceReceiver()
    receiver.check(10)
    receiver.check(12)

    assert receiver.lost == 1
    assert receiver.check(11) is SequenceVerdict.OUT_OF_ORDER
    assert receiver.check(11) is SequenceVerdict.DUPLICATE
    assert receiver.check(13) is SequenceVerdict.ACCEPT


def test_gap_counted_as_lost():
    """
    A jump ahead counts the skipped numbers as lost, across the wrap too.
    """
    receiver = SequenceReceiver()
    receiver.check(TOP - 2)

    assert receiver.check(2) is SequenceVerdict.ACCEPT
    assert receiver.lost == 4


def test_stale_numbers_dropped():
    """
    A number further behind than the window is stale and dropped, and the
    receiver stays where it was.
    """
    receiver = SequenceReceiver(window=16)
    receiver.check(1000)

    assert receiver.check(1000) is SequenceVerdict.DUPLICATE
    assert receiver.check(1000 - 15) is SequenceVerdict.OUT_OF_ORDER
    assert receiver.check(1000 - 16) is SequenceVerdict.STALE
    assert receiver.check(0) is SequenceVerdict.STALE
    assert receiver.check(1001) is SequenceVerdict.ACCEPT
    assert receiver.last == 1001


def test_restart_after_consecutive_stale_run():
    """
    A run of C{resync_after} stale packets with consecutive numbers is a
    restarted sender: the last of the run is accepted and the receiver
    continues from it.
    """
    receiver = SequenceReceiver(window=16, resync_after=3)
    receiver.check(1000)

    assert receiver.check(0) is SequenceVerdict.STALE
    assert receiver.check(1) is SequenceVerdict.STALE
    assert receiver.check(2) is SequenceVerdict.RESYNCHRONIZED
    assert receiver.check(3) is SequenceVerdict.ACCEPT
    assert receiver.last == 3


@pytest.mark.parametrize("breaker", [5, 1001], ids=["not-consecutive", "accepted-packet"])
def test_stale_run_broken(breaker):
    """
    A number that does not continue the run, or a packet accepted in
    between, starts the run again.
    """
    receiver = SequenceReceiver(window=16, resync_after=3)
    receiver.check(1000)
    receiver.check(0)
    receiver.check(1)

    receiver.check(breaker)

    assert receiver.check(2) is SequenceVerdict.STALE
    assert receiver.check(3) is SequenceVerdict.STALE


def test_resync_run_bounds():
    """
    A run of one would deliver any single old packet, so it is refused.
    """
    with pytest.raises(ValueError, match="at least 2 packets"):
        SequenceReceiver(resync_after=1)


def test_reset_accepts_anything():
    """
    After L{SequenceReceiver.reset} the next number is accepted as is.
    """
    receiver = SequenceReceiver()
    receiver.check(50)
    receiver.reset()

    assert receiver.check(40) is SequenceVerdict.ACCEPT
    assert receiver.last == 40


@pytest.mark.parametrize("window", [0, 1 << 31])
def test_window_bounds(window):
    """
    A window outside 1 to 2**31 - 1 raises L{ValueError}.
    """
    with pytest.raises(ValueError, match="sequence window"):
        SequenceReceiver(window)


@given(st.integers(0, TOP), st.lists(st.integers(0, 200), max_size=60))
def test_delivers_in_serial_order(start, offsets):
    """
    Whatever the arrival order, accepted numbers (without resynchronization)
    are strictly increasing in serial order and never repeat.
    """
    receiver = SequenceReceiver(window=64)
    accepted = []
    for offset in offsets:
        number = (start + offset) % (1 << 32)
        verdict = receiver.check(number)
        if verdict is SequenceVerdict.RESYNCHRONIZED:
            accepted = [number]
        elif verdict is SequenceVerdict.ACCEPT:
            accepted.append(number)

    for earlier, later in itertools.pairwise(accepted):
        assert serial_less_than(earlier, later)
