# -*- test-case-name: tests.daemons.test_roamctl -*-
"""
roamctl: show the state of a running roaming daemon.

roamctl connects to the daemon's local UNIX socket (L{roaming.tap.localapi}),
sends one request, and prints the reply as an aligned table or, with
C{--json}, as a JSON array of objects. It needs no reactor: one blocking
request with a timeout is all a command-line tool needs.

    roamctl --socket /run/roaming/sc1.sock fdb
    roamctl --config /etc/roaming/roaming-ap.toml --json clients
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from roaming import config

__all__ = ["REQUESTS", "RoamctlError", "format_table", "main", "query", "socket_from_config"]

# The text after each colon lists the columns of the reply, in order.
REQUESTS = {
    "status": (
        "node name, role, address, configuration file, uptime, VLANs, subnets, then the "
        "role's rows (an AP also shows its radio kind and how many radios are attached)"
    ),
    "fdb": (
        "forwarding database of every bridge: VLAN, MAC, IP, port, source egress, "
        "static, authorised, age"
    ),
    "l3": "L3 knowledge database of every bridge: VLAN, network, match, egress",
    "clients": "known clients: MAC, IP, prefix, VLAN, then the role's columns",
    "tunnels": (
        "GRE tunnels: peer, port, member, transport, link, frames sent and received, "
        "flood, control up"
    ),
    "peers": "control connections: peer, role, direction, state, up for, connects, queued",
    "counters": "every counter and gauge, with labels (also exported to Prometheus)",
}

# A daemon builds each reply from memory, so a slower reply means it is stuck.
DEFAULT_TIMEOUT = 5.0
# Bound on one reply, so a wrong socket cannot make roamctl read forever.
MAX_REPLY = 64 * 1024 * 1024


class RoamctlError(Exception):
    """
    A request failed. The message names the cause and what to check.
    """


def socket_from_config(path: Path | str) -> Path:
    """
    Return the roamctl socket named by a daemon's configuration file, of
    either role.

    @raise RoamctlError: if the file is not a valid configuration.
    """
    errors = []
    for role in config.ROLES:
        try:
            return config.load(path, role).roamctl.socket
        except config.ConfigError as error:
            errors.append(error)
    # Report the role whose parse had fewer problems: most likely the intended one.
    best = min(errors, key=lambda error: len(error.problems))
    raise RoamctlError(f"invalid configuration file:\n{best}")


def query(path: Path | str, request: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """
    Send C{request} to the daemon listening on C{path} and return its reply.

    @raise RoamctlError: if the socket cannot be reached, the reply is not
        JSON, or the daemon returned an error.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(path))
            message = json.dumps({"request": request}).encode("utf-8") + b"\n"
            connection.sendall(message)
            reply = _read_line(connection)
    except FileNotFoundError:
        raise RoamctlError(
            f"socket {path} not found: is the daemon running, and is this its [roamctl] socket?"
        ) from None
    except ConnectionRefusedError:
        raise RoamctlError(f"connection to {path} refused: the daemon is not running") from None
    except TimeoutError:
        raise RoamctlError(f"no reply from {path} within {timeout} s") from None
    except OSError as error:
        raise RoamctlError(f"cannot talk to {path}: {error.strerror or error}") from None

    try:
        response = json.loads(reply)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RoamctlError(f"invalid reply from {path}: {error}") from None
    if not isinstance(response, dict):
        raise RoamctlError(f"invalid reply from {path}: expected a JSON object")
    if not response.get("ok"):
        raise RoamctlError(f"daemon error: {response.get('error', 'no error message')}")
    if not isinstance(response.get("columns"), list) or not isinstance(response.get("rows"), list):
        raise RoamctlError(f"invalid reply from {path}: missing columns or rows")
    return response


def _read_line(connection: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            raise RoamctlError("the daemon closed the connection before replying")
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
        if size > MAX_REPLY:
            raise RoamctlError(f"reply longer than {MAX_REPLY} bytes")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """
    Lay out C{rows} under C{columns}, numbers right-aligned and everything
    else left-aligned, with a rule under the header.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(column) for column in columns]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    numeric = [
        bool(rows) and all(_is_number(row[index]) or row[index] is None for row in rows)
        for index in range(len(columns))
    ]

    def layout(texts: Sequence[str]) -> str:
        parts = []
        for index, text in enumerate(texts):
            if numeric[index]:
                parts.append(text.rjust(widths[index]))
            else:
                parts.append(text.ljust(widths[index]))
        return "  ".join(parts).rstrip()

    lines = [layout([column.upper() for column in columns])]
    lines.append("  ".join("-" * width for width in widths))
    lines.extend(layout(row) for row in cells)
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _records(response: dict[str, Any]) -> list[dict[str, Any]]:
    columns = response["columns"]
    return [dict(zip(columns, row, strict=True)) for row in response["rows"]]


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid timeout {text!r}: expected a finite number of seconds > 0"
        )
    return value


def _requests_help() -> str:
    lines = ["requests:"]
    for name, text in REQUESTS.items():
        lines.extend(
            textwrap.wrap(
                text, width=79, initial_indent=f"  {name:<10}", subsequent_indent=" " * 12
            )
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """
    Build the command-line parser.
    """
    parser = argparse.ArgumentParser(
        prog="roamctl",
        description="Show the state of a running roaming-sc or roaming-ap daemon.",
        epilog=_requests_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-s",
        "--socket",
        type=Path,
        help="the daemon's local socket, as set by [roamctl] socket in its configuration",
    )
    where.add_argument(
        "-c", "--config", type=Path, help="read the socket path from this configuration file"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON array of objects instead of a table"
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for the reply, a finite number > 0 (default {DEFAULT_TIMEOUT})",
    )
    parser.add_argument("request", choices=sorted(REQUESTS), help="what to show")
    return parser


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """
    Run roamctl and return its exit status: 0 on success, 1 if the request
    failed, 2 for a usage error.
    """
    stdout = stdout if stdout is not None else sys.stdout
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        path = _socket_path(parser, arguments)
        response = query(path, arguments.request, arguments.timeout)
    except RoamctlError as error:
        print(f"roamctl: {error}", file=sys.stderr)
        return 1

    if arguments.json:
        json.dump(_records(response), stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(format_table(response["columns"], response["rows"]) + "\n")
    return 0


def _socket_path(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> Path:
    if arguments.socket is not None:
        return arguments.socket
    if arguments.config is not None:
        return socket_from_config(arguments.config)
    parser.error("give the daemon's socket with --socket or its configuration with --config")
    raise AssertionError("unreachable: parser.error exits")


if __name__ == "__main__":
    sys.exit(main())
