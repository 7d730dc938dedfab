# -*- test-case-name: tests.lab.test_measure -*-
"""
Tests for L{roaming.lab.measure}, on probe records built by hand with a
1 ms probe interval and a 100 us round trip.
"""

import pytest

from roaming.lab.measure import RoamFigures, measure_roam, percentile, roam_windows, summarize

MS = 1_000_000
RTT = 100_000


def record(count, lost=(), late=()):
    """
    Return C{(send_ns, echo_ns)} for C{count} probes one millisecond apart;
    probes in C{lost} get no echo, those in C{late} an echo 30 ms late.
    """
    send = [index * MS for index in range(count)]
    echo = []
    for index, sent in enumerate(send):
        if index in lost:
            echo.append(0)
        elif index in late:
            echo.append(sent + 30 * MS)
        else:
            echo.append(sent + RTT)
    return send, echo


def test_windows_split_halfway():
    assert roam_windows([100, 300], 0, 500) == [(0, 200), (200, 500)]


def test_single_window():
    assert roam_windows([100], 0, 500) == [(0, 500)]


def test_lossless_roam_one_interval():
    send, echo = record(100)
    moved = 50 * MS + RTT + 1
    figures = measure_roam(send, echo, moved, (0, 100 * MS))
    assert figures.lost == 0
    assert figures.sent == 100
    assert figures.interruption_ms == pytest.approx(1.0)
    assert figures.restored


def test_gap_measured_from_echoes():
    send, echo = record(100, lost=range(50, 60))
    moved = 50 * MS
    figures = measure_roam(send, echo, moved, (0, 100 * MS))
    assert figures.lost == 10
    # Last old echo: probe 49 at 49.1 ms; first new: probe 60 at 60.1 ms.
    assert figures.last_old_ns == 49 * MS + RTT
    assert figures.first_new_ns == 60 * MS + RTT
    assert figures.interruption_ms == pytest.approx(11.0)


def test_late_echo_counts_as_new_path():
    send, echo = record(100, lost=range(51, 60), late=(50,))
    figures = measure_roam(send, echo, 50 * MS + RTT, (0, 100 * MS))
    # Probe 50's echo arrived at 80 ms, after probe 60's at 60.1 ms.
    assert figures.first_new_ns == 60 * MS + RTT
    assert figures.lost == 9


def test_not_restored():
    send, echo = record(100, lost=range(50, 100))
    figures = measure_roam(send, echo, 50 * MS, (0, 100 * MS))
    assert not figures.restored
    assert figures.interruption_ms is None
    assert figures.lost == 50


def test_path_breaking_again_not_restored():
    send, echo = record(100, lost=range(60, 100))
    figures = measure_roam(send, echo, 50 * MS, (0, 100 * MS))
    # Echoes came through the new AP for 10 ms, then stopped.
    assert figures.first_new_ns == 50 * MS + RTT
    assert figures.tail_answered == 0.0
    assert not figures.restored


def test_tail_mostly_answered_restored():
    send, echo = record(100, lost=(95,))
    figures = measure_roam(send, echo, 50 * MS, (0, 100 * MS))
    assert figures.tail_answered == pytest.approx(0.9)
    assert figures.restored


def test_last_old_echo_before_window():
    send, echo = record(100, lost=range(40, 70))
    figures = measure_roam(send, echo, 60 * MS, (50 * MS, 100 * MS))
    assert figures.last_old_ns == 39 * MS + RTT
    assert figures.sent == 50
    assert figures.lost == 20


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_summary_counts():
    figures = [
        RoamFigures(2.0, 1, 100, 1, 2),
        RoamFigures(4.0, 3, 100, 1, 2),
        RoamFigures(None, 50, 100, 1, None),
        RoamFigures(900.0, 60, 100, 1, 2, tail_answered=0.0),
    ]
    summary = summarize(figures)
    assert summary["roams"] == 4
    assert summary["restored"] == 2
    assert summary["p50_interruption_ms"] == 2.0
    assert summary["p99_interruption_ms"] == 4.0
    assert summary["max_interruption_ms"] == 4.0
    assert summary["lost"] == 114
    assert summary["sent"] == 400
