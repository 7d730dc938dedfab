"""
Benchmark of the roamctl socket under a burst of requests.

One process runs the local API (L{roaming.tap.localapi}) on a UNIX socket
in a temporary directory, serving a C{counters} view of C{--rows} rows,
and a 10 ms LoopingCall that records the gaps between its calls: the
longest gap is the longest time the reactor could not run anything else,
such as the control plane's keepalives. A client subprocess writes
C{--requests} request lines at once, from a thread, and reads every reply.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_localapi.py --requests 5000 --rows 300
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor, task

from roaming.tap.localapi import Table, local_api_service

# The client writes from a thread while it reads: a client that writes
# everything before reading fills both directions of the socket, and the
# daemon disconnects it once it has read no reply for the stall timeout.
CLIENT = """
import socket, sys, threading, time
connection = socket.socket(socket.AF_UNIX)
connection.connect(sys.argv[1])
count = int(sys.argv[2])
started = time.monotonic()
writer = threading.Thread(
    target=connection.sendall, args=(b'{"request":"counters"}\\n' * count,), daemon=True
)
writer.start()
replies = 0
while replies < count:
    data = connection.recv(1 << 20)
    if not data:
        break
    replies += data.count(b"\\n")
print(replies, time.monotonic() - started)
"""

TICK = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--requests", type=int, default=5000, help="request lines in one write")
    parser.add_argument("--rows", type=int, default=300, help="rows of the counters table")
    arguments = parser.parse_args()

    rows = [(f"counter_{index}", "vlan=0", index) for index in range(arguments.rows)]
    views = {"counters": lambda: Table(("name", "labels", "value"), rows)}
    directory = Path(tempfile.mkdtemp(prefix="bench-localapi-"))
    path = directory / "api.sock"
    service = local_api_service(reactor, path, views)
    service.startService()

    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    task.LoopingCall(tick).start(TICK)
    result: dict[str, str] = {}

    def run_client() -> None:
        command = [sys.executable, "-c", CLIENT, str(path), str(arguments.requests)]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
        result["output"] = finished.stdout.strip() or finished.stderr.strip()
        reactor.callFromThread(reactor.stop)

    reactor.callLater(0.2, reactor.callInThread, run_client)
    reactor.run()
    path.unlink(missing_ok=True)
    directory.rmdir()

    try:
        replies, elapsed = result["output"].split()
    except ValueError:
        raise SystemExit(f"client failed: {result['output']}") from None
    print(
        f"{arguments.requests} requests, {arguments.rows}-row replies: {replies} replies "
        f"in {float(elapsed):.2f} s; longest reactor gap {max(gaps) * 1000:.1f} ms "
        f"(timer every {TICK * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
