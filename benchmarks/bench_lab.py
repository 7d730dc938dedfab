# -*- test-case-name: tests.lab.test_runner -*-
"""
Roam interruption benchmark: the lab's C{long} scenario (52 roams per
client, at 1000 probes per second per client) with 1 and with 20 clients.

Run as root from the repository root:

    python benchmarks/bench_lab.py [--clients 1 20] [--rate 1000] [--scenario long]

It runs C{roaming-lab} once per client count, each in a fresh process, and
prints a Markdown table of the interruption p50, p99 and maximum, probes
lost, and the median time after the move at which each roam stage was
logged by the daemons, with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STAGE_ORDER = (
    "station-connected",
    "roamer-detected",
    "message-sent",
    "message-received",
    "first-frame-back",
)


def run_lab(clients: int, rate: float, scenario: str, hold: float, directory: Path) -> dict | None:
    """
    Run the lab once and return its JSON report, or L{None} if it failed
    before writing one.
    """
    report_path = directory / f"lab-{clients}.json"
    command = [
        sys.executable,
        "-m",
        "roaming.lab.cli",
        "run",
        "--clients",
        str(clients),
        "--rate",
        str(rate),
        "--scenario",
        scenario,
        "--hold",
        str(hold),
        "--json",
        str(report_path),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if not report_path.exists():
        print(
            f"roaming-lab with {clients} client(s) produced no report "
            f"(exit status {completed.returncode}):\n{completed.stdout}{completed.stderr}",
            file=sys.stderr,
        )
        return None
    report = json.loads(report_path.read_text())
    report["exit_status"] = completed.returncode
    return report


def stage_medians(report: dict) -> dict[str, float]:
    """
    Return, per stage name, the median over roams of the earliest time
    after the move at which any daemon logged that stage.
    """
    per_stage: dict[str, list[float]] = {}
    for roam in report["roams"]:
        earliest: dict[str, float] = {}
        for key, offset in roam.get("stages_ms", {}).items():
            stage = key.split("@")[0]
            earliest[stage] = min(offset, earliest.get(stage, offset))
        for stage, offset in earliest.items():
            per_stage.setdefault(stage, []).append(offset)
    return {stage: statistics.median(values) for stage, values in per_stage.items()}


def format_row(clients: int, report: dict) -> str:
    summary = report["summary"]

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return (
        f"| {clients} | {summary['roams']} | {summary['restored']} | "
        f"{shown(summary['p50_interruption_ms'])} | {shown(summary['p99_interruption_ms'])} | "
        f"{shown(summary['max_interruption_ms'])} | {summary['lost']} / {summary['sent']} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--scenario", default="long")
    parser.add_argument("--hold", type=float, default=1.0)
    parser.add_argument("--keep", type=Path, help="copy the JSON reports into this directory")
    arguments = parser.parse_args()

    reports = {}
    with tempfile.TemporaryDirectory(prefix=f"bench-lab-{os.getpid()}-") as temporary:
        for clients in arguments.clients:
            report = run_lab(
                clients, arguments.rate, arguments.scenario, arguments.hold, Path(temporary)
            )
            if report is None:
                continue
            reports[clients] = report
            if arguments.keep is not None:
                arguments.keep.mkdir(parents=True, exist_ok=True)
                (arguments.keep / f"lab-{clients}.json").write_text(
                    json.dumps(reports[clients], indent=2)
                )

    print(f"Command: python benchmarks/bench_lab.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"Machine: {os.cpu_count()} vCPU, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    print()
    print("| clients | roams | restored | p50 ms | p99 ms | max ms | lost / sent probes |")
    print("|---|---|---|---|---|---|---|")
    for clients, report in reports.items():
        print(format_row(clients, report))
    print()
    print("Median time after the move at which each stage was first logged (ms):")
    print()
    stages = {clients: stage_medians(report) for clients, report in reports.items()}
    names = [name for name in STAGE_ORDER if any(name in found for found in stages.values())]
    names += sorted({name for found in stages.values() for name in found} - set(names))
    print("| stage | " + " | ".join(f"{clients} client(s)" for clients in reports) + " |")
    print("|---|" + "---|" * len(reports))
    for name in names:
        cells = [
            "-" if name not in stages[clients] else f"{stages[clients][name]:.2f}"
            for clients in reports
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    failed = [clients for clients, report in reports.items() if report["exit_status"] != 0]
    missing = set(arguments.clients) - set(reports)
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
