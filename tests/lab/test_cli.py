# -*- test-case-name: tests.lab.test_cli -*-
"""
Tests for the C{--plot} handling of C{roaming-lab}: a missing plotting
package is reported before the lab starts, and a plot that cannot be
written does not cost the results.
"""

import io
import json
import sys

import pytest

from roaming.lab import runner
from roaming.lab.cli import EXIT_ERROR, main
from roaming.lab.runner import LabOptions, LabRun


def test_plot_without_matplotlib_stops_first(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    started = []
    monkeypatch.setattr(runner.LabRun, "run", lambda self: started.append(self))
    status = main(["--plot", str(tmp_path / "t.png")], output=io.StringIO())
    assert status == EXIT_ERROR
    assert started == []
    error = capsys.readouterr().err
    assert "matplotlib" in error
    assert "roaming[plot]" in error
    assert "Traceback" not in error


def test_plot_with_matplotlib_runs(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    report = {"ok": True, "roams": [], "summary": {}, "checks": {}}
    started = []

    def record_run(self):
        started.append(self.options)
        return report

    formatted = []

    def record_report(lab_report):
        formatted.append(lab_report)
        return "PASS"

    monkeypatch.setattr(runner.LabRun, "run", record_run)
    monkeypatch.setattr("roaming.lab.cli.format_report", record_report)
    output = io.StringIO()
    plot_path = tmp_path / "t.png"

    assert main(["--plot", str(plot_path)], output=output) == 0

    [options] = started
    assert str(options.plot_path) == str(plot_path)
    assert formatted == [report]
    assert output.getvalue() == "PASS\n"


def test_failed_plot_keeps_json(monkeypatch, tmp_path):
    import roaming.lab.plot

    def broken_plot(path, records, roams):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(roaming.lab.plot, "plot_timeline", broken_plot)
    output = io.StringIO()
    json_path = tmp_path / "lab.json"
    run = LabRun(LabOptions(json_path=json_path, plot_path=tmp_path / "t.png"), output=output)
    for step in ("_measure", "_attach_paths", "_attach_stages"):
        monkeypatch.setattr(run, step, lambda: None)
    monkeypatch.setattr(run, "_probe_records", dict)
    report = run._report()
    assert json.loads(json_path.read_text())["ok"] == report["ok"]
    assert "Plot not written" in output.getvalue()
    assert "matplotlib" in output.getvalue()
