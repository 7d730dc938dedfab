#!/usr/bin/env python3
# -*- test-case-name: tests.bridge -*-
"""
Measure the bridge core: forwarding decisions per second through
C{Bridge.process}, for each kind of frame alone and for a mix, and the cost
of classifying one frame with roaming's classifier, dpkt and scapy, all in
one run so the ratios hold on a noisy machine.

Run from the repository root::

    python benchmarks/bench_bridge.py
    python benchmarks/bench_bridge.py --profile     # add a cProfile of the mix

Each figure is the best of C{--repeat} short runs.  On a shared machine the
best run is the one least disturbed by other work, and short runs make an
undisturbed one likely.  Times include the Python loop that calls the code
under test; the table reports that loop's own cost.
"""

__all__ = ["main"]

import argparse
import cProfile
import io
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dpkt
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from roaming.bridge import Bridge, ap_entries
from roaming.bridge.classify import classify

BROADCAST = "ff:ff:ff:ff:ff:ff"
HOME = "02:00:00:00:01:05"
ROUTER = "02:00:00:00:01:01"
VISITOR = "02:00:00:00:02:07"
UNKNOWN = "02:00:00:00:09:09"

MIX = {"known unicast": 70, "unknown flood": 10, "roamer source-forwarded": 15, "ARP": 5}
"""Share of each kind in the mix, in percent: mostly established unicast flows."""


def udp_frame(src: str, dst: str, src_ip: str, dst_ip: str, size: int = 64) -> bytes:
    frame = Ether(src=src, dst=dst) / IP(src=src_ip, dst=dst_ip) / UDP(sport=5000, dport=5001)
    return bytes(frame / Raw(bytes(max(0, size - len(frame)))))


def build_bridge() -> tuple[Bridge, int, int, int]:
    """Return an access point bridge with a learned home station, router and visitor."""
    bridge = Bridge("bench")
    wlan = bridge.add_port("wlan")
    eth = bridge.add_port("eth", l3_learning=False)
    gre = bridge.add_port("gre", aggregation=True)
    bridge.add_member(gre, 1)
    bridge.l3.replace(ap_entries(["10.1.0.0/16"], gre, 1))
    bridge.process(wlan, None, udp_frame(HOME, ROUTER, "10.1.0.5", "8.8.8.8"), 0.0)
    bridge.process(eth, None, udp_frame(ROUTER, HOME, "8.8.8.8", "10.1.0.5"), 0.0)
    bridge.process(wlan, None, udp_frame(VISITOR, ROUTER, "10.2.0.7", "8.8.8.8"), 0.0)
    return bridge, wlan, eth, gre


def workloads(wlan: int) -> dict[str, list[tuple[int, None, bytes]]]:
    """Return C{(port, agg_id, frame)} calls for each kind of frame."""
    arp = bytes(
        Ether(src=HOME, dst=BROADCAST) / ARP(op=1, hwsrc=HOME, psrc="10.1.0.5", pdst="10.1.0.1")
    )
    return {
        "known unicast": [(wlan, None, udp_frame(HOME, ROUTER, "10.1.0.5", "8.8.8.8"))],
        "unknown flood": [(wlan, None, udp_frame(HOME, UNKNOWN, "10.1.0.5", "10.1.0.99"))],
        "roamer source-forwarded": [
            (wlan, None, udp_frame(VISITOR, ROUTER, "10.2.0.7", "8.8.8.8"))
        ],
        "ARP": [(wlan, None, arp)],
    }


class _NoOpBridge:
    """Stand-in with an empty C{process}, to measure the loop's own cost."""

    def process(self, port: int, agg_id: int | None, frame: bytes, now: float) -> tuple:
        return ()


def mixed(kinds: dict[str, list], count: int, seed: int) -> list:
    rng = random.Random(seed)
    population = [call for name, share in MIX.items() for call in kinds[name] * share]
    return [rng.choice(population) for _ in range(count)]


def best_time(run: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure_process(bridge: "Bridge | _NoOpBridge", calls: list, count: int, repeat: int) -> float:
    """Return the best time per C{Bridge.process} call, in seconds."""
    sequence = (calls * (count // len(calls) + 1))[:count]
    process = bridge.process

    def run() -> None:
        for port, agg_id, frame in sequence:
            process(port, agg_id, frame, 1.0)

    return best_time(run, repeat) / count


def measure_parser(parse: Callable[[bytes], object], frame: bytes, count: int, repeat: int):
    def run() -> None:
        for _ in range(count):
            parse(frame)

    return best_time(run, repeat) / count


def dpkt_parse(frame: bytes) -> object:
    """Parse down to the DHCP options, as deep as the classifier reads."""
    ethernet = dpkt.ethernet.Ethernet(frame)
    udp = ethernet.data.data
    if isinstance(udp, dpkt.udp.UDP) and udp.dport == 67:
        return dpkt.dhcp.DHCP(udp.data).opts
    return udp


def scapy_parse(frame: bytes) -> object:
    """Dissect every layer that scapy has a dissector for, as scapy does on construction."""
    return Ether(frame)


def classifier_frames() -> dict[str, bytes]:
    dhcp = bytes(
        Ether(src=VISITOR, dst=BROADCAST)
        / IP(src="10.2.0.7", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=bytes(16), ciaddr="10.2.0.7")
        / DHCP(options=[("message-type", "request"), ("hostname", b"laptop"), "end"])
    )
    return {
        "IPv4/UDP, 64 bytes": udp_frame(HOME, ROUTER, "10.1.0.5", "8.8.8.8"),
        "DHCP REQUEST": dhcp,
    }


def profile_mix(bridge: Bridge, calls: list, count: int) -> str:
    process = bridge.process
    profiler = cProfile.Profile()
    profiler.enable()
    for port, agg_id, frame in calls[:count]:
        process(port, agg_id, frame, 1.0)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(8)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000, help="frames per run (default 20000)")
    parser.add_argument(
        "--repeat", type=int, default=41, help="runs per measurement; the best counts (default 41)"
    )
    parser.add_argument(
        "--parse-frames",
        type=int,
        default=5_000,
        help="frames per classifier and dpkt run; scapy gets a twentieth (default 5000)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the mix")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mix order (default 1)")
    args = parser.parse_args(argv)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, {platform.system()} "
        f"{platform.release()}"
    )
    print(f"{args.frames} frames per run, best of {args.repeat}\n")

    bridge, wlan, _, _ = build_bridge()
    kinds = workloads(wlan)
    mix = mixed(kinds, args.frames, args.seed)
    print(f"{'Bridge.process':40} {'ns/frame':>10} {'decisions/s':>14}")
    results = {
        name: measure_process(bridge, calls, args.frames, args.repeat)
        for name, calls in kinds.items()
    }
    results["mix " + "/".join(str(share) for share in MIX.values())] = measure_process(
        bridge, mix, args.frames, args.repeat
    )
    for name, seconds in results.items():
        print(f"{name:40} {seconds * 1e9:10.0f} {1 / seconds:14,.0f}")
    baseline = measure_process(_NoOpBridge(), kinds["known unicast"], args.frames, args.repeat)
    print(f"{'(loop calling a no-op method)':40} {baseline * 1e9:10.0f}")

    print(f"\n{'classify one frame':40} {'ns/frame':>10} {'x roaming':>14}")
    for label, frame in classifier_frames().items():
        ours = measure_parser(classify, frame, args.parse_frames, args.repeat)
        theirs = {
            "dpkt": measure_parser(dpkt_parse, frame, args.parse_frames, args.repeat),
            "scapy": measure_parser(
                scapy_parse, frame, max(1, args.parse_frames // 20), args.repeat
            ),
        }
        print(f"{label + ', roaming classify':40} {ours * 1e9:10.0f} {1:14.1f}")
        for name, seconds in theirs.items():
            print(f"{label + ', ' + name:40} {seconds * 1e9:10.0f} {seconds / ours:14.1f}")

    if args.profile:
        count = args.frames * 10
        print(f"\ncProfile of {count} frames of the mix, by own time:")
        print(profile_mix(bridge, mixed(kinds, count, args.seed), count))


if __name__ == "__main__":
    main()
