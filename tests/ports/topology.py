"""
Namespace topologies with two hosts, used by the datapath tests and the
benchmark.  Host A (10.0.0.1) and host B (10.0.0.2) are in one subnet.  The
kernel bridge joins them, or one forwarder tap to tap, or one forwarder from
a TAP device to a packet-socket uplink, or two forwarders and a GRE tunnel.

Hosts are namespaces whose only interface is C{ha0} or C{hb0}.  Forwarders
are processes started with C{ip netns exec ... python -m
roaming.ports.forward}; they create their TAP devices, which are then moved
into the host namespaces.  Everything is removed on exit.
"""

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time

from .netns import Namespace, namespaces

__all__ = [
    "HOST_A",
    "HOST_B",
    "TUNNEL_KEY",
    "Topology",
    "gre_hop",
    "kernel_bridge",
    "tap_to_tap",
    "tap_to_uplink",
]

HOST_A = "10.0.0.1"
HOST_B = "10.0.0.2"
WAN_A = "192.0.2.1"
WAN_B = "192.0.2.2"
TUNNEL_KEY = 0x00C0_FFEE
WAN_MTU = 1600

_PYTHON = sys.executable
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Topology:
    """
    A running topology: the host namespaces, the forwarder processes and
    where they write their counters.
    """

    def __init__(self, kind: str, a: Namespace, b: Namespace) -> None:
        self.kind = kind
        self.a = a
        self.b = b
        self.forwarders: list[subprocess.Popen] = []
        self.counter_files: list[str] = []
        self.wan: Namespace | None = None

    def mac(self, host: Namespace) -> str:
        device = "ha0" if host is self.a else "hb0"
        return json.loads(host.ip("-j", "link", "show", device))[0]["address"]

    def stop_forwarders(self) -> list[dict]:
        """
        Stop the forwarders with SIGTERM and return the counters they wrote.
        """
        results = []
        for process in self.forwarders:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for path in self.counter_files:
            if os.path.exists(path):
                with open(path, encoding="utf-8") as stream:
                    results.append(json.load(stream))
                os.unlink(path)
        self.forwarders = []
        self.counter_files = []
        return results


def _start_forwarder(topology: Topology, namespace: Namespace, *arguments: str) -> None:
    counters = f"/tmp/{namespace.name}-counters.json"
    process = namespace.popen(
        _PYTHON,
        "-m",
        "roaming.ports.forward",
        *arguments,
        "--counters-file",
        counters,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=_REPOSITORY,
        text=True,
    )
    topology.forwarders.append(process)
    topology.counter_files.append(counters)
    ready, _, _ = select.select([process.stdout], [], [], 20.0)
    line = process.stdout.readline() if ready else ""
    if line.strip() != "ready":
        raise RuntimeError(
            f"forwarder in {namespace.name} did not start (exit code {process.poll()})"
        )


def _queue_option(tap_queue: int | None) -> list[str]:
    return [] if tap_queue is None else ["--tap-queue", str(tap_queue)]


def _host_up(host: Namespace, device: str, address: str) -> None:
    host.ip("addr", "add", f"{address}/24", "dev", device)
    host.ip("link", "set", device, "up")


def _move_tap(owner: Namespace, tap: str, host: Namespace, device: str) -> None:
    owner.ip("link", "set", tap, "netns", host.name)
    host.ip("link", "set", tap, "name", device)


def _wait_tap_carrier(host: Namespace, device: str) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        state = json.loads(host.ip("-j", "link", "show", device))[0]
        if "LOWER_UP" in state.get("flags", []):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{device} in {host.name} did not come up")


@contextlib.contextmanager
def kernel_bridge():
    """
    Hosts A and B joined by a Linux bridge in a third namespace.
    """
    with namespaces("ha", "hb", "kbr") as (a, b, middle):
        topology = Topology("kernel bridge", a, b)
        middle.ip("link", "add", "br0", "type", "bridge")
        for host, device, address, port in ((a, "ha0", HOST_A, "pa"), (b, "hb0", HOST_B, "pb")):
            middle.ip(
                "link", "add", port, "type", "veth", "peer", "name", device, "netns", host.name
            )
            middle.ip("link", "set", port, "master", "br0")
            middle.ip("link", "set", port, "up")
            _host_up(host, device, address)
        middle.ip("link", "set", "br0", "up")
        yield topology


@contextlib.contextmanager
def tap_to_tap(*, budget: int = 64, tap_queue: int | None = None):
    """
    Hosts A and B joined by one forwarder with a TAP device towards each.

    @param tap_queue: C{txqueuelen} of the TAP devices, or L{None} for the
        kernel's default.
    """
    with namespaces("ha", "hb", "fw") as (a, b, middle):
        topology = Topology("tap to tap", a, b)
        try:
            _start_forwarder(
                topology,
                middle,
                *("--tap", "fa", "--tap", "fb", "--budget", str(budget)),
                *_queue_option(tap_queue),
            )
            _move_tap(middle, "fa", a, "ha0")
            _move_tap(middle, "fb", b, "hb0")
            _host_up(a, "ha0", HOST_A)
            _host_up(b, "hb0", HOST_B)
            _wait_tap_carrier(a, "ha0")
            _wait_tap_carrier(b, "hb0")
            yield topology
        finally:
            topology.stop_forwarders()


@contextlib.contextmanager
def tap_to_uplink(*, budget: int = 64):
    """
    Host A behind a TAP device and host B on a veth pair whose other end,
    C{up0}, the forwarder attaches with a packet socket, as an access point
    attaches its wired uplink.
    """
    with namespaces("ha", "hb", "fw") as (a, b, middle):
        topology = Topology("tap to uplink", a, b)
        middle.ip("link", "add", "up0", "type", "veth", "peer", "name", "hb0", "netns", b.name)
        middle.ip("link", "set", "up0", "up")
        try:
            _start_forwarder(
                topology, middle, "--tap", "fa", "--packet", "up0", "--budget", str(budget)
            )
            _move_tap(middle, "fa", a, "ha0")
            _host_up(a, "ha0", HOST_A)
            _host_up(b, "hb0", HOST_B)
            _wait_tap_carrier(a, "ha0")
            yield topology
        finally:
            topology.stop_forwarders()


@contextlib.contextmanager
def gre_hop(
    *,
    transport: str = "ip",
    endpoint: str = "engine",
    budget: int = 64,
    tap_queue: int | None = None,
    keepalive: float | None = None,
    max_frame: int = 1618,
):
    """
    Hosts A and B each behind their own forwarder; the forwarders are
    joined by a GRE tunnel over a veth pair C{wa} (192.0.2.1) and C{wb}
    (192.0.2.2).

    The veth pair has an MTU of 1600, so that a full 1514-byte frame fits
    with the 20-byte outer IPv4 header, 12 bytes of GRE with key and
    sequence number, and 8 of UDP.  With
    the static table the ports do not fragment: a raw socket with
    C{IP_HDRINCL} rejects a packet over the MTU with C{EMSGSIZE}, which the
    port counts as a send error.

    @param transport: C{"ip"} for IP protocol 47, C{"udp"} for GRE-in-UDP.
    @param endpoint: C{"engine"} for the tunnel engine with sequence
        numbers and a path MTU of 1600, C{"table"} for the port layer's
        static table.
    @param tap_queue: C{txqueuelen} of the TAP devices, or L{None} for the
        kernel's default.
    @param keepalive: keepalive period of the tunnels in seconds (tunnel
        engine only), or L{None} for none.
    @param max_frame: the forwarders' largest frame; the default lets the
        hosts raise their devices to a 1600-byte MTU, one VLAN tag
        included.
    """
    keepalive_option = [] if keepalive is None else ["--keepalive", str(keepalive)]
    with namespaces("ha", "hb", "fa", "fb") as (a, b, forward_a, forward_b):
        topology = Topology(f"GRE hop ({transport}, {endpoint})", a, b)
        topology.wan = forward_b
        forward_a.ip(
            "link", "add", "wa", "type", "veth", "peer", "name", "wb", "netns", forward_b.name
        )
        forward_a.ip("link", "set", "wa", "mtu", str(WAN_MTU))
        forward_b.ip("link", "set", "wb", "mtu", str(WAN_MTU))
        _host_up(forward_a, "wa", WAN_A)
        _host_up(forward_b, "wb", WAN_B)
        try:
            for owner, host, device, address, local, remote in (
                (forward_a, a, "ha0", HOST_A, WAN_A, WAN_B),
                (forward_b, b, "hb0", HOST_B, WAN_B, WAN_A),
            ):
                _start_forwarder(
                    topology,
                    owner,
                    "--tap",
                    "tap0",
                    f"--gre-{transport}",
                    local,
                    "--tunnel",
                    f"1:{remote}:{TUNNEL_KEY:#x}",
                    "--budget",
                    str(budget),
                    "--endpoint",
                    endpoint,
                    "--path-mtu",
                    str(WAN_MTU),
                    "--max-frame",
                    str(max_frame),
                    *_queue_option(tap_queue),
                    *keepalive_option,
                )
                _move_tap(owner, "tap0", host, device)
                _host_up(host, device, address)
                _wait_tap_carrier(host, device)
            yield topology
        finally:
            topology.stop_forwarders()
