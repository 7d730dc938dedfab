# -*- test-case-name: tests.lab.test_plot -*-
"""
The timeline plot of a lab run: each probe's round-trip time against the
time it was sent, one colour per client, with a vertical mark at each roam.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_timeline"]


def plot_timeline(
    path: Path,
    records: Mapping[str, tuple[Sequence[int], Sequence[int]]],
    roams: Sequence[Any],
) -> None:
    """
    Write a PNG timeline to C{path}.

    @param records: C{(send_ns, echo_ns)} per client name; an echo time of
        0 marks a lost probe, drawn at the bottom of the plot.
    @param roams: records with C{moved_ns}, C{from_ap} and C{to_ap}.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    starts = [send[0] for send, _ in records.values() if send]
    origin = min(starts) if starts else 0
    figure, axes = pyplot.subplots(figsize=(12, 5), dpi=100)

    for name, (send_ns, echo_ns) in records.items():
        answered = [(s, e) for s, e in zip(send_ns, echo_ns, strict=True) if e]
        lost = [s for s, e in zip(send_ns, echo_ns, strict=True) if not e]
        axes.plot(
            [(s - origin) / 1e9 for s, _ in answered],
            [(e - s) / 1e6 for s, e in answered],
            ".",
            markersize=1.5,
            label=f"{name} round trip",
        )
        if lost:
            axes.plot(
                [(s - origin) / 1e9 for s in lost],
                [0.0] * len(lost),
                "x",
                markersize=3,
                color="red",
                label=f"{name} lost",
            )

    for index, roam in enumerate(roams):
        seconds = (roam.moved_ns - origin) / 1e9
        axes.axvline(seconds, color="grey", linewidth=0.6, linestyle="--")
        if len(roams) <= 20:
            axes.annotate(
                f"{roam.from_ap}>{roam.to_ap}",
                (seconds, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                fontsize=7,
                va="top",
                ha="right",
            )
        elif index == 0:
            axes.annotate("roams", (seconds, 1.0), xycoords=("data", "axes fraction"), fontsize=7)

    axes.set_yscale("symlog", linthresh=1.0)
    axes.set_ylim(bottom=0.0)
    axes.set_xlabel("time since the first probe (s)")
    axes.set_ylabel("probe round-trip time (ms)")
    axes.set_title("roaming-lab: UDP probe round trips; dashed lines are roams")
    if len(records) <= 4:
        axes.legend(loc="upper left", fontsize=7, markerscale=4)
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)
