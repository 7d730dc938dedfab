"""
Per-frame cost of the daemons' dispatcher (roaming.tap.bridging.NodeDispatcher)
next to the plain dispatcher of roaming.ports, on memory ports.

Both dispatch through the same bridge core, laid out as an AP's VLAN 0
bridge: uplink, own TAP, GRE port with one tunnel, radio. Each row sends
the same frame through a port's sink and reports the best of several runs.

    python benchmarks/bench_dispatch.py [--frames N] [--runs N]
"""

import argparse
import time

from twisted.internet.task import Clock

from roaming.bridge import Bridge, ap_entries
from roaming.ports.counters import PortCounters
from roaming.ports.dispatch import BridgeDispatcher
from roaming.tap.bridging import NodeDispatcher

STATION = bytes.fromhex("02aa00000001")
ROUTER = bytes.fromhex("02bb00000002")
VISITOR = bytes.fromhex("02cc00000003")


class NullPort:
    """
    A port whose sends cost one method call.
    """

    def __init__(self, name, aggregation=False):
        self.name = name
        self.aggregation = aggregation
        self.counters = PortCounters()
        self.sink = None

    def member_ids(self):
        return [1]

    def start_port(self, sink):
        self.sink = sink

    def stop_port(self):
        self.sink = None

    def send_frame(self, frame, agg_id=None):
        pass


def ipv4_frame(destination, source, source_ip):
    header = bytes.fromhex("450000320000400040110000") + source_ip + bytes((10, 1, 0, 1))
    return (destination + source + b"\x08\x00" + header).ljust(64, b"\x00")


def build(kind):
    """
    Return the ports of an AP bridge bound by a dispatcher of C{kind}.
    """
    bridge = Bridge("vlan0")
    if kind == "node":
        dispatcher = NodeDispatcher(
            bridge, clock=Clock(), on_events=lambda events: None, on_first_frame=lambda *a: None
        )
    else:
        dispatcher = BridgeDispatcher(bridge, clock=Clock())
    ports = {name: NullPort(name) for name in ("lan0", "rmbr0", "air0")}
    ports["gre"] = NullPort("gre-sc", aggregation=True)
    numbers = {}
    for name, port in ports.items():
        options = {}
        if kind == "node" and name == "gre":
            options["tunnel"] = True
        if name in ("lan0", "rmbr0"):
            options["l3_learning"] = False
        numbers[name] = dispatcher.attach(port, **options)
    if kind == "node":
        dispatcher.guard(numbers["lan0"])
        dispatcher.keep_local(numbers["rmbr0"], numbers["lan0"])
    bridge.l3.replace(ap_entries(["10.1.0.0/24"], numbers["gre"], 1))
    # Learn the stations: the router on the LAN, a home station and a
    # visitor on the radio.
    ports["lan0"].sink(None, ipv4_frame(STATION, ROUTER, bytes((10, 1, 0, 1))))
    ports["air0"].sink(None, ipv4_frame(ROUTER, STATION, bytes((10, 1, 0, 50))))
    ports["air0"].sink(None, ipv4_frame(ROUTER, VISITOR, bytes((10, 2, 0, 50))))
    return ports


def measure(sink, frame, frames, runs):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(frames):
            sink(None, frame)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None or elapsed < best else best
    return best / frames * 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--frames", type=int, default=20000, help="frames per run")
    parser.add_argument("--runs", type=int, default=21, help="runs per row; the best counts")
    arguments = parser.parse_args()

    rows = [
        (
            "known unicast, home station to router",
            "air0",
            ipv4_frame(ROUTER, STATION, bytes((10, 1, 0, 50))),
        ),
        (
            "visitor, source-forwarded to GRE",
            "air0",
            ipv4_frame(ROUTER, VISITOR, bytes((10, 2, 0, 50))),
        ),
        ("broadcast from the LAN", "lan0", ipv4_frame(b"\xff" * 6, ROUTER, bytes((10, 1, 0, 1)))),
    ]
    print("| frame | plain dispatcher ns/frame | daemon dispatcher ns/frame | added ns |")
    print("|---|---|---|---|")
    plain, node = build("plain"), build("node")
    for label, ingress, frame in rows:
        plain_ns = measure(plain[ingress].sink, frame, arguments.frames, arguments.runs)
        node_ns = measure(node[ingress].sink, frame, arguments.frames, arguments.runs)
        print(f"| {label} | {plain_ns:.0f} | {node_ns:.0f} | {node_ns - plain_ns:.0f} |")


if __name__ == "__main__":
    main()
