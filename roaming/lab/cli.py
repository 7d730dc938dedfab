# -*- test-case-name: tests.lab.test_cli -*-
"""
The C{roaming-lab} command.

C{roaming-lab} (or C{roaming-lab run}) builds the lab network in network
namespaces, runs the roaming daemons in it, roams the clients, prints one
line per roam and a summary, and removes everything it created. Its exit
status is 0 only if every roam restored connectivity and every client kept
its address, ARP, DHCP renewal and its TCP connection.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from roaming.lab.runner import SCENARIOS, LabOptions, LabRun
from roaming.lab.topology import MAX_CLIENTS, LabError

__all__ = ["build_parser", "format_report", "main"]

EXIT_FAILED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _positive_rate(text: str) -> float:
    rate = float(text)
    if not 1.0 <= rate <= 20000.0:
        raise argparse.ArgumentTypeError(
            f"invalid rate {text}: expected 1 to 20000 probes per second"
        )
    return rate


def _client_count(text: str) -> int:
    count = int(text)
    if not 1 <= count <= MAX_CLIENTS:
        raise argparse.ArgumentTypeError(
            f"invalid client count {text}: expected 1 to {MAX_CLIENTS}"
        )
    return count


def _hold(text: str) -> float:
    seconds = float(text)
    if not 0.1 <= seconds <= 60.0:
        raise argparse.ArgumentTypeError(f"invalid hold time {text}: expected 0.1 to 60 seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """
    Return the argument parser of C{roaming-lab}.
    """
    parser = argparse.ArgumentParser(
        prog="roaming-lab",
        description=(
            "Build a roaming network in network namespaces (needs root and /dev/net/tun), "
            "roam real clients across subnets while probing, report the interruption of "
            "each roam, and remove everything."
        ),
    )
    commands = parser.add_subparsers(dest="command")
    _add_run_options(parser)
    # The subcommand repeats the options without defaults, so that
    # "roaming-lab --clients 3 run" keeps the 3.
    run = commands.add_parser("run", help="run a scenario (the default command)")
    _add_run_options(run, defaults=False)
    return parser


def _add_run_options(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        default=default(None),
        help="write the JSON report to PATH",
    )
    parser.add_argument(
        "--pcap",
        type=Path,
        metavar="DIR",
        default=default(None),
        help="capture every namespace's links into DIR/<name>.pcap",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PATH",
        default=default(None),
        help="write a PNG timeline of probe round trips to PATH",
    )
    parser.add_argument(
        "--clients",
        type=_client_count,
        default=default(1),
        metavar="N",
        help="number of clients (default 1)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_rate,
        default=default(1000.0),
        metavar="HZ",
        help="UDP probes per second per client (default 1000)",
    )
    parser.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default=default("default"),
        help="default: 4 roams per client (home AP, both APs of subnet B, home AP, other AP "
        "of subnet A); long: that tour 13 times, 52 roams",
    )
    parser.add_argument(
        "--hold",
        type=_hold,
        default=default(1.0),
        metavar="SECONDS",
        help="time between roams (default 1.0)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        default=default(None),
        help="copy the daemons' logs and configurations to DIR",
    )


def format_report(report: dict[str, Any]) -> str:
    """
    Return the report as the text C{roaming-lab} prints.
    """
    lines = [
        f"{'client':<10} {'from':<6} {'to':<6} {'kind':<16} {'interruption':>13} "
        f"{'lost/sent':>10}  path"
    ]
    for roam in report["roams"]:
        interruption = roam["interruption_ms"]
        shown = "not restored" if interruption is None else f"{interruption:.2f} ms"
        lost = f"{roam['lost']}/{roam['sent']}"
        lines.append(
            f"{roam['client']:<10} {roam['from_ap']:<6} {roam['to_ap']:<6} {roam['kind']:<16} "
            f"{shown:>13} {lost:>10}  {' '.join(roam['path']) or '-'}"
        )
    summary = report["summary"]

    def milliseconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} ms"

    lines.append(
        f"{summary['restored']}/{summary['roams']} roams restored connectivity; interruption "
        f"p50 {milliseconds(summary['p50_interruption_ms'])}, "
        f"p99 {milliseconds(summary['p99_interruption_ms'])}, "
        f"max {milliseconds(summary['max_interruption_ms'])}; "
        f"{summary['lost']} of {summary['sent']} probes lost"
    )
    for client, check in report["checks"].items():
        results = ", ".join(
            f"{name.replace('_', ' ')} {'ok' if check.get(name) else 'FAILED'}"
            for name in ("kept_address", "arp_after_flush", "dhcp_renewal", "tcp_connection")
        )
        lines.append(f"{client} ({check.get('address') or 'no address'}): {results}")
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, output: TextIO | None = None) -> int:
    """
    Run C{roaming-lab} and return its exit status.
    """
    output = output or sys.stdout
    arguments = build_parser().parse_args(argv)
    if arguments.plot is not None and importlib.util.find_spec("matplotlib") is None:
        # Checked before the lab starts, like the programs it needs.
        print(
            "roaming-lab: --plot needs matplotlib: install it with "
            "pip install 'roaming[plot]', or run without --plot",
            file=sys.stderr,
        )
        return EXIT_ERROR
    options = LabOptions(
        clients=arguments.clients,
        rate=arguments.rate,
        scenario=arguments.scenario,
        hold=arguments.hold,
        json_path=arguments.json,
        pcap_dir=arguments.pcap,
        plot_path=arguments.plot,
        log_dir=arguments.logs,
    )
    try:
        report = LabRun(options, output=output).run()
    except LabError as error:
        print(f"roaming-lab: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("roaming-lab: interrupted; everything it created was removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(format_report(report), file=output)
    return 0 if report["ok"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
