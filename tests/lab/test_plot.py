# -*- test-case-name: tests.lab.test_plot -*-
"""
Tests for L{roaming.lab.plot}.
"""

from dataclasses import dataclass

from roaming.lab.plot import plot_timeline

MS = 1_000_000


@dataclass
class Mark:
    moved_ns: int
    from_ap: str
    to_ap: str


def test_plot_writes_png(tmp_path):
    send = [index * MS for index in range(200)]
    echo = [0 if 100 <= index < 110 else sent + MS // 5 for index, sent in enumerate(send)]
    path = tmp_path / "timeline.png"
    plot_timeline(path, {"client-1": (send, echo)}, [Mark(100 * MS, "ap-a1", "ap-b1")])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_plot_many_roams_and_clients(tmp_path):
    records = {
        f"client-{number}": ([index * MS for index in range(50)], [0] * 50)
        for number in range(1, 8)
    }
    marks = [Mark(index * MS, "ap-a1", "ap-b1") for index in range(30)]
    path = tmp_path / "many.png"
    plot_timeline(path, records, marks)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
