# -*- test-case-name: tests.lab.test_lab -*-
"""
One lab run: build the network, start the daemons, roam the clients while
probing, check what must survive a roam, report, and remove everything.

The steps, in order:

  1. build the namespaces (L{roaming.lab.topology});
  2. serve one emulated radio per AP, in a reactor thread;
  3. write certificates and configurations, start SC1 (primary), SC2 and
     the four APs under twistd, and wait until each responds to roamctl, each
     AP's radio is attached and every node's address answers ping;
  4. start dnsmasq in each subnet and the echo server on the host;
  5. associate each client with its home AP, run udhcpc until it is bound,
     and start its probe program;
  6. for each roam: move the client's link to the new AP's cell, then
     report the station connected to the new AP and disconnected from the
     old one, and wait C{hold} seconds;
  7. check each client: it kept its address, ARP resolves again after
     C{ip neigh flush}, its DHCP lease renews, and its TCP connection still
     echoes;
  8. stop everything and compute the figures (L{roaming.lab.measure}).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from roaming.lab import daemons, dhcp
from roaming.lab.measure import RoamFigures, measure_roam, roam_windows, summarize
from roaming.lab.probe import read_results
from roaming.lab.processes import LabProcess, ProcessGroup, wait_for
from roaming.lab.topology import (
    Client,
    LabError,
    LabNetwork,
    LabPlan,
    Node,
    check_privileges,
    default_plan,
    run_in,
)

__all__ = ["SCENARIOS", "LabOptions", "LabRun", "RoamRecord", "roam_kind", "scenario_targets"]

#: Scenario name: how many times each client does the tour
#: home AP -> first AP in B -> second AP in B -> home AP -> other AP in A.
#: Each tour is four roams.
SCENARIOS = {"default": 1, "long": 13}

ECHO_UDP_PORT = 7
ECHO_TCP_PORT = 7
READY_TIMEOUT = 30.0
DHCP_TIMEOUT = 20.0
# Stage events later than this after a move belong to something else.
STAGE_HORIZON_S = 2.0


@dataclass
class LabOptions:
    """
    Settings of one run: the command-line options of C{roaming-lab run}.
    """

    clients: int = 1
    rate: float = 1000.0
    scenario: str = "default"
    hold: float = 1.0
    json_path: Path | None = None
    pcap_dir: Path | None = None
    plot_path: Path | None = None
    log_dir: Path | None = None


@dataclass
class RoamRecord:
    """
    One roam of one client, with its figures once measured.
    """

    client: Client
    from_ap: str
    to_ap: str
    kind: str
    moved_ns: int
    moved_wall: float
    step: int
    figures: RoamFigures | None = None
    path: list[str] = field(default_factory=list)
    stages_ms: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """
        Return the record as the JSON report lists it.
        """
        figures = self.figures
        return {
            "client": self.client.name,
            "from_ap": self.from_ap,
            "to_ap": self.to_ap,
            "kind": self.kind,
            "interruption_ms": figures.interruption_ms if figures and figures.restored else None,
            "lost": None if figures is None else figures.lost,
            "sent": None if figures is None else figures.sent,
            "restored": figures is not None and figures.restored,
            "path": self.path,
            "stages_ms": self.stages_ms,
        }


def roam_kind(plan: LabPlan, client: Client, from_ap: str, to_ap: str) -> str:
    """
    Classify a roam by whether each AP is in the client's home subnet.
    """
    home = plan.node(client.home_ap).subnet
    from_home = plan.node(from_ap).subnet == home
    to_home = plan.node(to_ap).subnet == home
    if from_home and to_home:
        return "within-home"
    if from_home:
        return "home-to-foreign"
    if to_home:
        return "foreign-to-home"
    return "within-foreign"


def scenario_targets(plan: LabPlan, client: Client, scenario: str) -> list[str]:
    """
    Return the APs C{client} roams to, in order.

    @raise LabError: if C{scenario} is not in L{SCENARIOS}.
    """
    if scenario not in SCENARIOS:
        raise LabError(
            f"invalid scenario {scenario!r}: expected one of {', '.join(sorted(SCENARIOS))}"
        )
    home = plan.node(client.home_ap)
    others = [node.name for node in plan.nodes_with_role("ap") if node.subnet == home.subnet]
    other_home = next(name for name in others if name != home.name)
    foreign = [node.name for node in plan.nodes_with_role("ap") if node.subnet != home.subnet]
    tour = [foreign[0], foreign[1], home.name, other_home]
    return tour * SCENARIOS[scenario]


class _RadioThread:
    """
    The emulated radios, served by a reactor running in a daemon thread.
    """

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.radios: dict[str, Any] = {}
        self._thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
        )

    def start(self, sockets: dict[str, Path]) -> None:
        from roaming.radio import EmulatedRadio

        self._thread.start()
        for name, path in sockets.items():
            radio = EmulatedRadio(str(path), reactor=self.reactor)
            self._call(radio.listen)
            self.radios[name] = radio

    def attached(self, name: str) -> bool:
        return self._call(lambda: bool(self.radios[name].state.clients))

    def connect(self, name: str, mac: bytes) -> int:
        return self._call(self.radios[name].connect_station, mac)

    def disconnect(self, name: str, mac: bytes) -> int:
        return self._call(self.radios[name].disconnect_station, mac)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        for radio in self.radios.values():
            with contextlib.suppress(Exception):
                self._call(radio.close)
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(5.0)

    def _call(self, function: Any, *arguments: Any) -> Any:
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, function, *arguments)


class LabRun:
    """
    One run of the lab. Call L{run}; it always removes what it created.
    """

    def __init__(self, options: LabOptions, *, output: TextIO = sys.stdout) -> None:
        self.options = options
        self.output = output
        self.prefix = f"rmlab-{os.getpid()}"
        self.plan = default_plan(self.prefix, options.clients)
        self.network = LabNetwork(self.plan)
        self.directory = Path()
        self.processes: ProcessGroup | None = None
        self.radios: _RadioThread | None = None
        self.roams: list[RoamRecord] = []
        self.checks: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, str] = {}
        self.udhcpc: dict[str, LabProcess] = {}
        self.probes: dict[str, LabProcess] = {}
        self.tunnel_snapshots: list[tuple[int, dict[str, int]]] = []
        self.probe_start_ns = 0
        self.probe_end_ns = 0
        # pyroute2 forks helper processes that inherit signal handlers and
        # stacks; only this process may clean up.
        self.owner_pid = os.getpid()

    def say(self, text: str) -> None:
        """
        Print one progress line.
        """
        print(text, file=self.output, flush=True)

    def run(self) -> dict[str, Any]:
        """
        Run the lab and return the report that C{--json} writes.

        @raise LabError: if the lab cannot be built or a component fails.
        """
        check_privileges()
        _check_programs(capture=self.options.pcap_dir is not None)
        if self.options.scenario not in SCENARIOS:
            scenario_targets(self.plan, self.plan.clients[0], self.options.scenario)
        previous = signal.signal(signal.SIGTERM, _interrupt_handler(self.owner_pid))
        self.directory = Path(tempfile.mkdtemp(prefix=f"roaming-lab-{os.getpid()}-"))
        self.processes = ProcessGroup(self.directory)
        try:
            self._build_and_start()
            self._roam_all()
            self._check_clients()
            self._stop_probes()
            return self._report()
        finally:
            self._clean_up()
            signal.signal(signal.SIGTERM, previous)

    def _build_and_start(self) -> None:
        self.say(f"Building the lab network (namespaces {self.prefix}-*)")
        self.network.build()
        if self.options.pcap_dir is not None:
            self._start_captures(self.options.pcap_dir)

        self.radios = _RadioThread()
        aps = self.plan.nodes_with_role("ap")
        self.radios.start({ap.name: daemons.radio_socket(self.directory, ap) for ap in aps})
        self._start_daemons()

        for subnet in self.plan.subnets:
            self.processes.start(
                f"dnsmasq-{subnet.name}",
                self.plan.namespace(f"dhcp-{subnet.name}"),
                dhcp.dnsmasq_command(subnet, self.directory),
            )
        host = self.plan.node("host-a")
        self.processes.start(
            "echo",
            self.plan.namespace(host.name),
            [sys.executable, "-m", "roaming.lab.probe", "echo"],
        )
        self._connect_clients()

    def _start_captures(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for namespace in self.plan.namespaces:
            name = namespace.removeprefix(f"{self.prefix}-")
            self.processes.start(
                f"tcpdump-{name}",
                namespace,
                ["tcpdump", "-i", "any", "-U", "-n", "-w", str(directory / f"{name}.pcap")],
            )
            # A capture on "any" records interface indexes, not names.
            links = run_in(namespace, ["ip", "-o", "link", "show"])
            (directory / f"{name}.links").write_text(links)

    def _start_daemons(self) -> None:
        daemons.write_certificates(self.plan, self.directory)
        # The primary SC first, so the others find it at once.
        nodes = self.plan.nodes_with_role("sc") + self.plan.nodes_with_role("ap")
        for node in nodes:
            config = daemons.write_config(self.plan, node, self.directory)
            log_file = self.directory / f"{node.name}.twistd.log"
            command = daemons.daemon_command(node, config, log_file)
            self.say(f"Starting {node.name}: {' '.join(command)}")
            self.processes.start(
                node.name, self.plan.namespace(node.name), command, own_log_path=log_file
            )
        self._wait_for_daemons(nodes)

    def _wait_for_daemons(self, nodes: list[Node]) -> None:
        from roaming.roamctl import RoamctlError, query

        def answers(node: Node) -> bool:
            self.processes.check_alive()
            try:
                query(daemons.roamctl_socket(self.directory, node), "status", timeout=1.0)
            except RoamctlError:
                return False
            return True

        for node in nodes:
            wait_for(
                lambda node=node: answers(node),
                timeout=READY_TIMEOUT,
                what=f"{node.name} to respond to roamctl (log: {self._daemon_log(node)})",
            )
        for node in self.plan.nodes_with_role("ap"):
            wait_for(
                lambda node=node: self.radios.attached(node.name),
                timeout=READY_TIMEOUT,
                what=f"{node.name} to attach to its emulated radio",
            )
        host = self.plan.namespace("host-a")
        for node in nodes:
            wait_for(
                lambda node=node: _ping(host, str(node.address)),
                timeout=READY_TIMEOUT,
                interval=0.2,
                what=f"{node.name} at {node.address} to answer ping from host-a",
            )
        self.say("All daemons are up")

    def _daemon_log(self, node: Node) -> Path:
        return self.directory / f"{node.name}.twistd.log"

    def _connect_clients(self) -> None:
        script = dhcp.write_udhcpc_script(self.directory)
        for client in self.plan.clients:
            self.radios.connect(client.home_ap, client.mac)
            events = dhcp.client_events_path(self.directory, client)
            self.udhcpc[client.name] = self.processes.start(
                f"udhcpc-{client.name}",
                self.plan.namespace(client.name),
                dhcp.udhcpc_command(script),
                environment={"ROAMING_LAB_DHCP_EVENTS": str(events)},
            )
        for client in self.plan.clients:
            events = dhcp.client_events_path(self.directory, client)
            bound = wait_for(
                lambda events=events: [
                    e for e in dhcp.read_lease_events(events) if e.kind == "bound"
                ],
                timeout=DHCP_TIMEOUT,
                what=f"{client.name} to get a DHCP lease at {client.home_ap}",
            )
            self.leases[client.name] = bound[-1].address
            self.say(f"{client.name} got {bound[-1].address} by DHCP at {client.home_ap}")
        self._start_probes()

    def _start_probes(self) -> None:
        host = self.plan.node("host-a")
        self.probe_start_ns = time.monotonic_ns()
        for client in self.plan.clients:
            self.probes[client.name] = self.processes.start(
                f"probe-{client.name}",
                self.plan.namespace(client.name),
                [
                    sys.executable,
                    "-m",
                    "roaming.lab.probe",
                    "client",
                    "--server",
                    str(host.address),
                    "--udp-port",
                    str(ECHO_UDP_PORT),
                    "--tcp-port",
                    str(ECHO_TCP_PORT),
                    "--rate",
                    str(self.options.rate),
                    "--client",
                    str(client.index),
                    "--output",
                    str(self.directory / f"probe-{client.name}"),
                ],
            )
        for client in self.plan.clients:
            probe = self.probes[client.name]
            wait_for(
                lambda probe=probe: "ready" in probe.log_tail(),
                # Twenty clients starting at once on a loaded machine need
                # several seconds each to import Python and connect.
                timeout=READY_TIMEOUT,
                what=f"the probe program of {client.name} to start",
            )
        # Let the probe stream settle before the first roam.
        time.sleep(max(self.options.hold, 0.5))

    def _roam_all(self) -> None:
        targets = {
            client.name: scenario_targets(self.plan, client, self.options.scenario)
            for client in self.plan.clients
        }
        position = {client.name: client.home_ap for client in self.plan.clients}
        steps = len(next(iter(targets.values())))
        self.say(f"Roaming {len(self.plan.clients)} client(s), {steps} roam(s) each")
        # Clients of one step roam one after another, spread over a fifth of
        # the hold time, so their roams overlap like a crowd's would.
        spacing = self.options.hold / 5 / max(1, len(self.plan.clients))

        self.tunnel_snapshots.append((time.monotonic_ns(), self._tunnel_counters()))
        for step in range(steps):
            for client in self.plan.clients:
                to_ap = targets[client.name][step]
                self._roam(client, position[client.name], to_ap, step)
                position[client.name] = to_ap
                time.sleep(spacing)
            time.sleep(max(0.0, self.options.hold - spacing * len(self.plan.clients)))
            self.processes.check_alive()
            self.tunnel_snapshots.append((time.monotonic_ns(), self._tunnel_counters()))

    def _roam(self, client: Client, from_ap: str, to_ap: str, step: int) -> None:
        self.network.move_client(client, self.plan.node(to_ap))
        moved_ns = time.monotonic_ns()
        moved_wall = time.time()
        self.radios.connect(to_ap, client.mac)
        self.radios.disconnect(from_ap, client.mac)
        kind = roam_kind(self.plan, client, from_ap, to_ap)
        self.roams.append(RoamRecord(client, from_ap, to_ap, kind, moved_ns, moved_wall, step=step))

    def _tunnel_counters(self) -> dict[str, int]:
        """
        Return the frames each daemon has sent so far on its GRE ports, from
        the C{port_tx_frames} counters of roamctl's C{counters} view.
        """
        from roaming.roamctl import RoamctlError, query

        counters = {}
        for node in self.plan.nodes_with_role("sc") + self.plan.nodes_with_role("ap"):
            try:
                reply = query(daemons.roamctl_socket(self.directory, node), "counters", timeout=1.0)
            except RoamctlError:
                continue
            counters[node.name] = _gre_frames_sent(reply)
        return counters

    def _check_clients(self) -> None:
        host = self.plan.node("host-a")
        for client in self.plan.clients:
            namespace = self.plan.namespace(client.name)
            address = _current_address(namespace)
            kept = address == self.leases[client.name]

            run_in(namespace, ["ip", "neigh", "flush", "dev", "wlan0"])
            arp_ok = _ping(namespace, str(host.address), count=3)

            events_path = dhcp.client_events_path(self.directory, client)
            renewals = _count(dhcp.read_lease_events(events_path), "renew")
            dhcp.request_renewal(self.udhcpc[client.name].pid)
            try:
                wait_for(
                    lambda path=events_path, before=renewals: (
                        _count(dhcp.read_lease_events(path), "renew") > before
                    ),
                    timeout=10.0,
                    what=f"{client.name} to renew its DHCP lease",
                )
                renewed = dhcp.read_lease_events(events_path)[-1]
                dhcp_ok = renewed.kind == "renew" and renewed.address == self.leases[client.name]
            except LabError:
                dhcp_ok = False
            self.checks[client.name] = {
                "address": address,
                "kept_address": kept,
                "arp_after_flush": arp_ok,
                "dhcp_renewal": dhcp_ok,
            }

    def _stop_probes(self) -> None:
        self.probe_end_ns = time.monotonic_ns()
        for process in self.probes.values():
            self.processes.stop(process, timeout=15.0)

    def _report(self) -> dict[str, Any]:
        self._measure()
        self._attach_paths()
        self._attach_stages()
        figures = [roam.figures for roam in self.roams if roam.figures is not None]
        summary = summarize(figures)
        report = {
            "roams": [roam.as_json() for roam in self.roams],
            "summary": summary,
            "checks": self.checks,
            "options": {
                "clients": self.options.clients,
                "rate": self.options.rate,
                "scenario": self.options.scenario,
                "hold": self.options.hold,
            },
        }
        report["ok"] = self._all_passed()
        # The results come first: a plot that cannot be drawn loses only the plot.
        if self.options.json_path is not None:
            self.options.json_path.write_text(json.dumps(report, indent=2) + "\n")
        if self.options.plot_path is not None:
            self._write_plot()
        return report

    def _write_plot(self) -> None:
        try:
            from roaming.lab.plot import plot_timeline

            plot_timeline(self.options.plot_path, self._probe_records(), self.roams)
        except (ImportError, OSError) as error:
            self.say(f"Plot not written to {self.options.plot_path}: {error}")

    def _all_passed(self) -> bool:
        """
        Return whether every roam restored connectivity and every client
        passed every check.
        """
        if not self.roams:
            return False
        for roam in self.roams:
            if roam.figures is None or not roam.figures.restored:
                return False
        for check in self.checks.values():
            for name in ("kept_address", "arp_after_flush", "dhcp_renewal", "tcp_connection"):
                if not check.get(name):
                    return False
        return True

    def _probe_records(self) -> dict[str, tuple[Any, Any]]:
        return {
            client.name: read_results(str(self.directory / f"probe-{client.name}"))[1:]
            for client in self.plan.clients
        }

    def _measure(self) -> None:
        for client in self.plan.clients:
            summary, send_ns, echo_ns = read_results(str(self.directory / f"probe-{client.name}"))
            self.checks[client.name]["tcp_connection"] = bool(summary["tcp_ok"])
            if summary["tcp_error"]:
                self.checks[client.name]["tcp_error"] = summary["tcp_error"]
            roams = [roam for roam in self.roams if roam.client == client]
            end_ns = send_ns[-1] + 1 if send_ns else self.probe_end_ns
            start_ns = send_ns[0] if send_ns else self.probe_start_ns
            windows = roam_windows([roam.moved_ns for roam in roams], start_ns, end_ns)
            for roam, window in zip(roams, windows, strict=True):
                roam.figures = measure_roam(send_ns, echo_ns, roam.moved_ns, window)

    def _attach_paths(self) -> None:
        """
        Name, for each roam, the daemons that sent at least a quarter of the
        probes of the hold time into GRE tunnels after it: the tunneled path.
        """
        order = {node.name: index for index, node in enumerate(self.plan.nodes)}
        for roam in self.roams:
            before = self.tunnel_snapshots[roam.step][1]
            after = self.tunnel_snapshots[roam.step + 1][1]
            expected = self.options.rate * self.options.hold * len(self.plan.clients)
            senders = [
                node
                for node, frames in after.items()
                if frames - before.get(node, 0) >= max(10, expected / 4)
            ]
            # The new AP first, then the SCs, then the other APs.
            senders.sort(
                key=lambda node: (node != roam.to_ap, not node.startswith("sc"), order[node])
            )
            roam.path = senders

    def _attach_stages(self) -> None:
        events = []
        for node in self.plan.nodes_with_role("sc") + self.plan.nodes_with_role("ap"):
            with contextlib.suppress(OSError):
                events += daemons.parse_stage_events(
                    self._daemon_log(node).read_text(errors="replace")
                )
        for roam in self.roams:
            mac = roam.client.mac.hex(":")
            horizon = STAGE_HORIZON_S
            later = [
                other.moved_wall
                for other in self.roams
                if other.client == roam.client and other.moved_wall > roam.moved_wall
            ]
            if later:
                # Stages after the client's next move belong to that roam.
                horizon = min(horizon, min(later) - roam.moved_wall)
            for event in events:
                offset = event.timestamp - roam.moved_wall
                if event.mac != mac or not 0 <= offset < horizon:
                    continue
                key = f"{event.stage}@{event.node}"
                roam.stages_ms.setdefault(key, round(offset * 1000, 3))

    def _clean_up(self) -> None:
        if os.getpid() != self.owner_pid:
            os._exit(1)
        if self.options.log_dir is not None:
            with contextlib.suppress(OSError):
                shutil.copytree(self.directory, self.options.log_dir, dirs_exist_ok=True)
        self.processes.stop_all()
        if self.radios is not None:
            self.radios.stop()
        failed = self.network.destroy()
        if failed:
            self.say(
                f"Could not remove namespaces {', '.join(failed)}: remove them with ip netns del"
            )
        shutil.rmtree(self.directory, ignore_errors=True)


def _gre_frames_sent(reply: dict[str, Any]) -> int:
    """
    Sum the C{port_tx_frames} counters of the GRE ports in a roamctl
    C{counters} reply, whose rows are C{(name, labels, value)}.
    """
    total = 0
    for row in reply.get("rows", []):
        if len(row) != 3:
            continue
        name, labels, value = row
        if name == "port_tx_frames" and "port=gre" in str(labels) and isinstance(value, int):
            total += value
    return total


def _count(events: list[dhcp.LeaseEvent], kind: str) -> int:
    return sum(1 for event in events if event.kind == kind)


def _current_address(namespace: str) -> str:
    output = run_in(namespace, ["ip", "-4", "-o", "addr", "show", "dev", "wlan0"])
    for field_text in output.split():
        if "/" in field_text and field_text[0].isdigit():
            return field_text.split("/")[0]
    return ""


def _ping(namespace: str, address: str, *, count: int = 1) -> bool:
    completed = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "ping",
            "-n",
            "-q",
            "-c",
            str(count),
            "-i",
            "0.2",
            "-W",
            "1",
            address,
        ],
        capture_output=True,
        timeout=10 + count,
        check=False,
    )
    return completed.returncode == 0


def _check_programs(*, capture: bool) -> None:
    programs = [("dnsmasq", "dnsmasq-base"), ("udhcpc", "udhcpc"), ("ping", "iputils-ping")]
    if capture:
        programs.append(("tcpdump", "tcpdump"))
    missing = [
        f"{program} (apt-get install {package})"
        for program, package in programs
        if shutil.which(program) is None and not os.path.exists(f"/usr/sbin/{program}")
    ]
    if missing:
        raise LabError("roaming-lab needs " + ", ".join(missing))


def _interrupt_handler(owner_pid: int) -> Any:
    """
    Return a SIGTERM handler that interrupts the lab like Ctrl-C, in the
    lab's own process only; a forked helper just exits.
    """

    def handle(signum: int, frame: object) -> None:
        if os.getpid() != owner_pid:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    return handle
