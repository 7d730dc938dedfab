# -*- test-case-name: tests.lab.test_topology -*-
"""
The lab's traffic programs, run inside namespaces as
C{python -m roaming.lab.probe echo|client ...}.

C{echo} runs on the host: it returns every UDP probe to its sender and
echoes every line received on TCP connections.

C{client} runs in a client namespace. It first opens a TCP connection to
the host, then sends UDP probes at a fixed rate and records, per probe, the
send time and the time its echo arrived (CLOCK_MONOTONIC, in nanoseconds,
which every namespace of the machine shares with the lab). Every 100 ms it
also sends a numbered line on the TCP connection. On SIGTERM it stops
sending, waits for late echoes, checks that the TCP connection still
echoes, and writes its results.

Results: C{<output>.bin} holds the send times then the echo times (0 when
no echo came) as native-endian signed 64-bit integers, and C{<output>.json}
the count and the TCP outcome.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import json
import select
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence

__all__ = ["PROBE", "main", "read_results"]

#: Probe payload: sequence number, client number, send time in nanoseconds.
PROBE = struct.Struct("!IIQ")

#: Probes are padded to this size, a small VoIP-like packet.
PROBE_SIZE = 64

#: Bound on the probes one client records (about 10 minutes at 1000/s).
MAX_PROBES = 600_000

TCP_INTERVAL_NS = 100_000_000
DRAIN_SECONDS = 0.5
TCP_CHECK_SECONDS = 5.0


def _run_echo(arguments: argparse.Namespace) -> int:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    udp.bind((arguments.bind, arguments.udp_port))
    udp.setblocking(False)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((arguments.bind, arguments.tcp_port))
    listener.listen(256)
    listener.setblocking(False)

    selector = selectors.DefaultSelector()
    selector.register(udp, selectors.EVENT_READ, "udp")
    selector.register(listener, selectors.EVENT_READ, "listen")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    print("ready", flush=True)

    while not stopping:
        for key, _ in selector.select(0.5):
            if key.data == "udp":
                _echo_datagrams(udp)
            elif key.data == "listen":
                connection, _ = listener.accept()
                connection.setblocking(False)
                selector.register(connection, selectors.EVENT_READ, "tcp")
            else:
                _echo_stream(selector, key.fileobj)
    return 0


def _echo_datagrams(udp: socket.socket) -> None:
    # Drain up to a budget per wake-up so TCP connections are not starved.
    for _ in range(256):
        try:
            data, sender = udp.recvfrom(2048)
        except BlockingIOError:
            return
        # The sender may be unreachable right now, as during a roam; the
        # client then counts the probe as lost.
        with contextlib.suppress(OSError):
            udp.sendto(data, sender)


def _echo_stream(selector: selectors.BaseSelector, connection: socket.socket) -> None:
    try:
        data = connection.recv(65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        data = b""
    if not data:
        selector.unregister(connection)
        connection.close()
        return
    try:
        connection.sendall(data)
    except OSError:
        selector.unregister(connection)
        connection.close()


class _TcpCheck:
    """
    The client's TCP connection: numbered lines out, echoes counted.
    """

    def __init__(self, server: str, port: int) -> None:
        self.socket = socket.create_connection((server, port), timeout=5.0)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.setblocking(False)
        self.sent = 0
        self.echoed = 0
        self.error = ""
        self._buffer = b""

    def send_line(self) -> None:
        self.sent += 1
        try:
            self.socket.send(f"{self.sent}\n".encode())
        except BlockingIOError:
            self.sent -= 1
        except OSError as error:
            self.error = self.error or f"send failed: {error}"

    def receive(self) -> None:
        while True:
            try:
                data = self.socket.recv(65536)
            except BlockingIOError:
                return
            except OSError as error:
                self.error = self.error or f"receive failed: {error}"
                return
            if not data:
                self.error = self.error or "connection closed by the server"
                return
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            self.echoed += len(lines)


def _run_client(arguments: argparse.Namespace) -> int:
    tcp = _TcpCheck(arguments.server, arguments.tcp_port)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    udp.connect((arguments.server, arguments.udp_port))
    udp.setblocking(False)

    send_ns = array.array("q")
    echo_ns = array.array("q")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))

    interval_ns = int(1e9 / arguments.rate)
    padding = bytes(PROBE_SIZE - PROBE.size)
    start_ns = time.monotonic_ns()
    next_tcp_ns = start_ns
    print("ready", flush=True)

    while not stopping and len(send_ns) < MAX_PROBES:
        now_ns = time.monotonic_ns()
        due = (now_ns - start_ns) // interval_ns + 1
        while len(send_ns) < min(due, MAX_PROBES):
            sequence = len(send_ns)
            stamp = time.monotonic_ns()
            send_ns.append(stamp)
            echo_ns.append(0)
            # Without a route or a neighbour during a roam, the probe is lost.
            with contextlib.suppress(OSError):
                udp.send(PROBE.pack(sequence, arguments.client, stamp) + padding)
        if now_ns >= next_tcp_ns:
            next_tcp_ns += TCP_INTERVAL_NS
            tcp.send_line()
        _receive_echoes(udp, echo_ns)
        tcp.receive()
        wait_ns = start_ns + len(send_ns) * interval_ns - time.monotonic_ns()
        _wait_readable(udp, max(wait_ns, 0) / 1e9)

    drain_until = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < drain_until:
        _wait_readable(udp, 0.01)
        _receive_echoes(udp, echo_ns)

    tcp_ok = _final_tcp_check(tcp)
    with open(arguments.output + ".bin", "wb") as output:
        send_ns.tofile(output)
        echo_ns.tofile(output)
    summary = {
        "count": len(send_ns),
        "rate": arguments.rate,
        "tcp_ok": tcp_ok,
        "tcp_sent": tcp.sent,
        "tcp_echoed": tcp.echoed,
        "tcp_error": tcp.error,
    }
    with open(arguments.output + ".json", "w") as output:
        json.dump(summary, output)
    return 0


def _receive_echoes(udp: socket.socket, echo_ns: array.array) -> None:
    while True:
        try:
            data = udp.recv(2048)
        except (BlockingIOError, ConnectionRefusedError):
            return
        except OSError:
            return
        arrived = time.monotonic_ns()
        if len(data) < PROBE.size:
            continue
        sequence, _, _ = PROBE.unpack_from(data)
        if sequence < len(echo_ns) and echo_ns[sequence] == 0:
            echo_ns[sequence] = arrived


def _wait_readable(udp: socket.socket, timeout: float) -> None:
    # select() takes its timeout in microseconds. epoll and poll (the
    # selectors module's choices on Linux) round it up to whole
    # milliseconds, which turned a 1000 per second stream into pairs of
    # probes every 2 ms.
    select.select([udp], [], [], timeout)


def _final_tcp_check(tcp: _TcpCheck) -> bool:
    """
    Send one more line and wait for every line to come back.
    """
    tcp.send_line()
    deadline = time.monotonic() + TCP_CHECK_SECONDS
    while time.monotonic() < deadline and not tcp.error:
        tcp.receive()
        if tcp.echoed >= tcp.sent:
            return True
        time.sleep(0.01)
    return False


def read_results(output: str) -> tuple[dict, array.array, array.array]:
    """
    Read a client's results: the summary, send times and echo times.
    """
    with open(output + ".json") as summary_file:
        summary = json.load(summary_file)
    count = summary["count"]
    send_ns = array.array("q")
    echo_ns = array.array("q")
    with open(output + ".bin", "rb") as data:
        send_ns.fromfile(data, count)
        echo_ns.fromfile(data, count)
    return summary, send_ns, echo_ns


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m roaming.lab.probe")
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo", help="echo UDP probes and TCP lines")
    echo.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    echo.add_argument("--udp-port", type=int, default=7, help="UDP echo port")
    echo.add_argument("--tcp-port", type=int, default=7, help="TCP echo port")
    client = commands.add_parser("client", help="send probes and hold a TCP connection")
    client.add_argument("--server", required=True, help="address of the echo host")
    client.add_argument("--udp-port", type=int, default=7, help="UDP echo port")
    client.add_argument("--tcp-port", type=int, default=7, help="TCP echo port")
    client.add_argument("--rate", type=float, default=1000.0, help="probes per second")
    client.add_argument("--client", type=int, default=1, help="client number put in probes")
    client.add_argument("--output", required=True, help="path prefix of the result files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the C{echo} or C{client} program.
    """
    arguments = _build_parser().parse_args(argv)
    if arguments.command == "echo":
        return _run_echo(arguments)
    return _run_client(arguments)


if __name__ == "__main__":
    sys.exit(main())
