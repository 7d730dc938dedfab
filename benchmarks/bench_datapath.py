"""
Datapath benchmark: packets per second, Mbit/s, added round-trip time and
CPU per packet between two network namespaces, side by side through

  (a) the kernel bridge,
  (b) one roaming forwarder, TAP to TAP,
  (c) two roaming forwarders joined by one GRE tunnel (IP protocol 47).

Run as root from the repository root::

    python benchmarks/bench_datapath.py --output /tmp/datapath.json

A C traffic generator (bench_datapath_gen.c, compiled with cc into a
temporary directory) offers each rate of the sweep from host A; delivered
frames are the receive counter of host B's interface.  Frame sizes are
bytes as written to the device, without the 4-byte FCS that veth and TAP
devices do not carry.  Round-trip times come from ping (kernel echo replies,
no user-space responder).
"""

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPOSITORY)

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from tests.ports import netns  # noqa: E402
from tests.ports.topology import HOST_A, HOST_B, gre_hop, kernel_bridge, tap_to_tap  # noqa: E402

PATHS = {
    "kernel": (kernel_bridge, 0),
    "tap": (tap_to_tap, 1),
    "gre": (gre_hop, 2),
}
"""Topology and number of Python forwarders on the path, by name."""

DEFAULT_RATES = (25_000, 50_000, 100_000, 200_000, 400_000, 0)
"""Offered packets per second; 0 is a flood."""

_DISCARD_PORT = 9
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_RTT = re.compile(r"time=([0-9.]+) ms")


def compile_generator(directory: str) -> str:
    """
    Compile the C generator and return the path of the binary.
    """
    source = os.path.join(_REPOSITORY, "benchmarks", "bench_datapath_gen.c")
    binary = os.path.join(directory, "bench_datapath_gen")
    subprocess.run(["cc", "-O2", "-o", binary, source], check=True)
    return binary


def build_frame(size: int, source_mac: str, destination_mac: str) -> bytes:
    """
    Return a UDP frame of C{size} bytes from host A to the discard port of
    host B, built by scapy.
    """
    header = (
        Ether(src=source_mac, dst=destination_mac)
        / IP(src=HOST_A, dst=HOST_B)
        / UDP(sport=40000, dport=_DISCARD_PORT)
    )
    padding = size - len(header)
    if padding < 0:
        raise ValueError(f"frame size {size} is below the {len(header)}-byte headers")
    return bytes(header / (b"\x00" * padding))


def process_cpu_seconds(pid: int) -> float:
    """
    Return user plus system CPU seconds of process C{pid} (proc(5), fields 14-15).
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """
    Return CPU seconds all CPUs spent not idle since boot (proc(5), /proc/stat).
    """
    with open("/proc/stat", encoding="ascii") as stream:
        values = [int(value) for value in stream.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / _CLOCK_TICKS


def received_frames(topology) -> int:
    """
    Return the receive counter of host B's interface.
    """
    link = json.loads(topology.b.ip("-s", "-j", "link", "show", "hb0"))[0]
    return link["stats64"]["rx"]["packets"]


def ingress_dropped(topology) -> int:
    """
    Return the send drops of host A's interface: for a TAP device, the frames
    the kernel dropped because the forwarder did not read them in time.
    """
    link = json.loads(topology.a.ip("-s", "-j", "link", "show", "ha0"))[0]
    return link["stats64"]["tx"]["dropped"]


def measure_latency(topology, count: int) -> dict:
    """
    Ping host B from host A C{count} times, 10 ms apart, and return the
    median and 99th percentile round trip in microseconds.
    """
    output = topology.a.exec(
        "ping", "-c", str(count), "-i", "0.01", "-W", "1", HOST_B, timeout=count * 0.1 + 30
    )
    samples = sorted(float(value) * 1000 for value in _RTT.findall(output))
    if len(samples) < count * 0.9:
        raise RuntimeError(f"only {len(samples)} of {count} pings received a reply")
    return {
        "rtt_median_us": statistics.median(samples),
        "rtt_p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
        "samples": len(samples),
    }


def measure_rate(topology, generator: str, frame: bytes, rate: int, duration: float) -> dict:
    """
    Offer C{rate} frames per second (0: flood) for C{duration} seconds and
    return what arrived and what it cost.
    """
    forwarders = [process.pid for process in topology.forwarders]
    before_frames = received_frames(topology)
    before_dropped = ingress_dropped(topology)
    before_cpu = sum(process_cpu_seconds(pid) for pid in forwarders)
    before_busy = machine_busy_seconds()

    output = topology.a.exec(
        generator, "ha0", frame.hex(), str(rate), str(duration), timeout=duration + 30
    )
    # Frames still queued in a forwarder arrive shortly after the generator stops.
    time.sleep(0.3)

    delivered = received_frames(topology) - before_frames
    dropped = ingress_dropped(topology) - before_dropped
    forwarder_cpu = sum(process_cpu_seconds(pid) for pid in forwarders) - before_cpu
    busy = machine_busy_seconds() - before_busy
    generated = json.loads(output)
    elapsed = generated["elapsed"]
    return {
        "offered_rate": rate,
        "sent": generated["sent"],
        "sent_pps": generated["sent"] / elapsed,
        "delivered": delivered,
        "delivered_pps": delivered / elapsed,
        # Frames host B receives besides the generator's (ARP) can push the
        # loss a hair below zero; report those as no loss.
        "loss": max(0.0, 1 - delivered / generated["sent"]) if generated["sent"] else 0.0,
        "ingress_dropped": dropped,
        "mbit_per_s": delivered * len(frame) * 8 / elapsed / 1e6,
        "forwarder_cpu_us_per_frame": forwarder_cpu / delivered * 1e6 if delivered else None,
        "machine_cpu_us_per_frame": busy / delivered * 1e6 if delivered else None,
    }


def run_path(name: str, generator: str, options) -> dict:
    """
    Build topology C{name}, measure latency and the rate sweep, tear it down.
    """
    factory, hops = PATHS[name]
    load_before = os.getloadavg()[0]
    options_of_path = {} if name == "kernel" else {"tap_queue": options.tap_queue}
    with factory(**options_of_path) as topology:
        topology.a.exec("ping", "-c", "2", "-i", "0.2", "-W", "2", HOST_B, timeout=20)
        topology.b.exec("ping", "-c", "2", "-i", "0.2", "-W", "2", HOST_A, timeout=20)
        with netns.inside(topology.b):
            discard = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A bound socket that is never read drops the flood without sending
        # ICMP port-unreachable back through the path.
        discard.bind((HOST_B, _DISCARD_PORT))
        try:
            result = {"path": topology.kind, "python_hops": hops}
            result.update(measure_latency(topology, options.pings))
            mac_a, mac_b = topology.mac(topology.a), topology.mac(topology.b)
            result["sweeps"] = {}
            for size in options.sizes:
                frame = build_frame(size, mac_a, mac_b)
                sweep = []
                for rate in options.rates:
                    point = measure_rate(topology, generator, frame, rate, options.duration)
                    print(
                        f"{name:6} {size:5}B offered {rate or 'flood':>7}: "
                        f"{point['delivered_pps']:10.0f} pps delivered, "
                        f"loss {point['loss']:.1%}",
                        file=sys.stderr,
                        flush=True,
                    )
                    sweep.append(point)
                result["sweeps"][str(size)] = sweep
            if topology.forwarders:
                result["forwarder_counters"] = topology.stop_forwarders()
            # Other work on the machine inflates every figure; record how much.
            result["load_average"] = [load_before, os.getloadavg()[0]]
            return result
        finally:
            discard.close()


def markdown(results: list[dict]) -> str:
    """
    Return the summary tables of C{results} as Markdown.
    """
    kernel = results[0]
    lines = [
        "| path | size | offered pps | delivered pps | loss | of which at ingress | Mbit/s "
        "| fwd CPU us/frame | machine CPU us/frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for size, sweep in result["sweeps"].items():
            for point in sweep:
                lines.append(_sweep_row(result, size, point))
    lines += [
        "",
        "| path | RTT median us | RTT p99 us | added median us | added per Python hop us "
        "| flood pps 64 B | ratio to kernel | load average before, after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    kernel_flood = _flood_pps(kernel, "64")
    for result in results:
        added = result["rtt_median_us"] - kernel["rtt_median_us"]
        per_hop = added / result["python_hops"] if result["python_hops"] else None
        flood = _flood_pps(result, "64")
        lines.append(
            f"| {result['path']} | {result['rtt_median_us']:.0f} | {result['rtt_p99_us']:.0f} "
            f"| {added:.0f} | {'-' if per_hop is None else f'{per_hop:.0f}'} "
            f"| {'-' if flood is None else f'{flood:.0f}'} "
            f"| {'-' if flood is None or not kernel_flood else f'{flood / kernel_flood:.2f}'} "
            f"| {result['load_average'][0]:.1f}, {result['load_average'][1]:.1f} |"
        )
    return "\n".join(lines)


def _sweep_row(result: dict, size: str, point: dict) -> str:
    offered = point["offered_rate"] or f"flood ({point['sent_pps']:.0f})"
    forwarder = point["forwarder_cpu_us_per_frame"]
    if not result["python_hops"]:
        forwarder = None
    forwarder_text = "-" if forwarder is None else f"{forwarder:.2f}"
    machine = point["machine_cpu_us_per_frame"]
    machine_text = "-" if machine is None else f"{machine:.2f}"
    lost = point["sent"] - point["delivered"]
    # The counters are read 0.3 s after the generator stops, so a share can
    # exceed 100% by a few frames; report it capped.
    at_ingress = f"{min(1.0, point['ingress_dropped'] / lost):.0%}" if lost > 0 else "-"
    return (
        f"| {result['path']} | {size} | {offered} | {point['delivered_pps']:.0f} "
        f"| {point['loss']:.1%} | {at_ingress} | {point['mbit_per_s']:.0f} "
        f"| {forwarder_text} | {machine_text} |"
    )


def _flood_pps(result: dict, size: str) -> float | None:
    for point in result["sweeps"].get(size, []):
        if point["offered_rate"] == 0:
            return point["delivered_pps"]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 1400], help="frame bytes")
    parser.add_argument(
        "--rates", nargs="+", type=int, default=list(DEFAULT_RATES), help="offered pps, 0 = flood"
    )
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per rate")
    parser.add_argument("--pings", type=int, default=300, help="pings per latency measurement")
    parser.add_argument(
        "--tap-queue",
        type=int,
        metavar="FRAMES",
        help="txqueuelen of the forwarders' TAP devices (default: the kernel's, 1000)",
    )
    parser.add_argument("--output", help="write all results to this JSON file")
    options = parser.parse_args(argv)
    if not netns.CAN_USE_NETNS:
        parser.error("needs root, /dev/net/tun and iproute2")

    with tempfile.TemporaryDirectory(prefix="bench_datapath-") as directory:
        generator = compile_generator(directory)
        results = [run_path(name, generator, options) for name in options.paths]

    bridge_nf = "unknown"
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables", encoding="ascii") as stream:
            bridge_nf = stream.read().strip()
    machine = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "bridge_nf_call_iptables": bridge_nf,
    }
    if options.output:
        with open(options.output, "w", encoding="utf-8") as stream:
            json.dump({"machine": machine, "results": results}, stream, indent=1)
    print(json.dumps(machine))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
