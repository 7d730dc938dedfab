"""
Benchmark of the control plane over TLS on loopback addresses.

Three processes:

  - C{sc}: one SC (L{ServiceController} behind a L{ControlService}) with a
    client database file, listening on 127.0.0.1;
  - C{aps}: the simulated APs, one L{AccessPoint} and one TLS connection
    each, connecting from 127.1.x.y so that every AP has its own address
    and certificate. It runs the workload and measures it end to end;
  - C{converge}: 20 SCs in one process, each with its own TLS listener,
    for the discovery convergence figures.

Workload of the C{aps} process:

  1. Associations: every client associates with its home AP and its IP
     address is seen (two IappAdd and one ApDeleteTraveler per client). The
     phase ends when every command has been answered by the SC.
  2. Roams: every client associates with the next AP, in another subnet,
     and its IP address is seen there. The SC sends IappMove to the old AP
     and, as the clients' home SC too, AddTraveler to the home AP. The phase
     ends when every home AP has received its AddTraveler, so the rate
     covers the whole notice chain AP -> SC -> AP.

The SC's resident memory (VmRSS, VmHWM) and CPU time are read from
/proc/<pid>. The SC shares no client details with its APs in this run
(C{share_client_cache=False}), because sharing sends every IappAdd to all
1000 APs.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_control.py --aps 1000 --clients 50000
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from twisted.internet import defer, task
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from roaming.control import pki
from roaming.control.actions import AddL3Entry, AddStaticEntry
from roaming.control.ap import AccessPoint
from roaming.control.clientdb import ClientDatabase
from roaming.control.protocol import ConnectionSettings
from roaming.control.sc import ServiceController
from roaming.control.service import (
    AccessPointBinding,
    ControlNode,
    ControlService,
    ServiceControllerBinding,
)
from roaming.control.tls import (
    ClientTLS,
    NodeCredentials,
    client_endpoint,
    load_credentials,
    server_endpoint,
)

SC_ADDRESS = "127.0.0.1"
# Generous bounds so that the benchmark ends even when something is stuck.
PHASE_LIMIT = 600.0
POLL_INTERVAL = 0.02
# Clients handled per reactor turn while generating the workload.
CHUNK = 200
# Long enough that a loaded machine does not abort connections mid-run.
SETTINGS = ConnectionSettings(idle_timeout=300.0, max_queued=1_000_000)


def ap_address(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


# Every AP has a subnet of its own, the largest case for an SC: it registers
# all of them with the primary in one ScRegister, which carries at most
# roaming.control.messages.MAX_SUBNETS (2048) subnets.
APS_PER_SUBNET = 1


def ap_subnet(index: int) -> IPv4Network:
    subnet = index // APS_PER_SUBNET
    return IPv4Network(f"10.{subnet // 64}.{subnet % 64 * 4}.0/22")


def client_mac(number: int) -> bytes:
    return bytes([2, 0]) + number.to_bytes(4, "big")


def client_ip(home: int, slot: int, per_ap: int) -> IPv4Address:
    return ap_subnet(home).network_address + 10 + (home % APS_PER_SUBNET) * per_ap + slot


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def start_logging() -> None:
    """
    Send warnings and errors of a child process to its standard error.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_proc(pid: int) -> dict[str, float]:
    """
    Return the resident memory (MiB) and CPU seconds of process C{pid}.
    """
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "hwm_mib": int(fields["VmHWM"].split()[0]) / 1024,
        "cpu_s": (int(stat[11]) + int(stat[12])) / ticks,
    }


def issue(authority, address: str) -> NodeCredentials:
    ca_certificate, ca_key = authority
    now = utc_now()
    certificate, key = pki.issue_certificate(
        ca_certificate,
        ca_key,
        f"node-{address}",
        now=now,
        ip_addresses=[address],
        not_before=now - datetime.timedelta(hours=1),
    )
    return NodeCredentials(certificate, key, ca_certificate)


@defer.inlineCallbacks
def wait_until(reactor, condition, what: str, limit: float = PHASE_LIMIT):
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {limit} s waiting for {what}")
        yield task.deferLater(reactor, POLL_INTERVAL, lambda: None)


# The SC process.


def run_sc(arguments) -> None:
    from twisted.internet import reactor

    raise_file_limit()
    start_logging()
    directory = Path(arguments.dir)
    credentials = load_credentials(
        directory / "sc.crt", directory / "sc.key", directory / "ca.crt", now=utc_now()
    )
    database_path = {
        "file": str(directory / "sc.sqlite"),
        "memory": ":memory:",
        "none": None,
    }[arguments.sc_database]
    controller = ServiceController(
        IPv4Address(SC_ADDRESS),
        ClientDatabase(database_path, max_clients=arguments.clients * 2),
        primary=IPv4Address(SC_ADDRESS),
        share_client_cache=False,
        max_access_points=arguments.aps + 16,
    )
    counts = {"data_plane": 0}

    def data_plane(action) -> None:
        counts["data_plane"] += 1

    node = ControlNode(
        ServiceControllerBinding(controller),
        clock=reactor,
        data_plane=data_plane,
        settings=SETTINGS,
    )
    service = ControlService(
        node,
        credentials,
        reactor=reactor,
        listen_endpoint=lambda tls: server_endpoint(reactor, tls, 0, SC_ADDRESS, backlog=4096),
    )
    service.startService()

    def report(port) -> None:
        print(f"listening {port.getHost().port}", flush=True)

    service.listening.addCallback(report)
    reactor.run()


# The simulated APs.


class SimulatedAccessPoints:
    """
    Many AP nodes in one process, all connected to one SC.
    """

    def __init__(self, reactor, authority, count: int, port: int) -> None:
        self.reactor = reactor
        self.count = count
        self.access_points: list[AccessPoint] = []
        self.nodes: list[ControlNode] = []
        self.services: list[ControlService] = []
        self.add_traveler_seen = 0
        for index in range(count):
            address = ap_address(index)
            access_point = AccessPoint(
                IPv4Address(address),
                IPv4Address(SC_ADDRESS),
                [ap_subnet(index)],
                database=ClientDatabase(None),
                max_stations=100_000,
            )
            node = ControlNode(
                AccessPointBinding(access_point),
                clock=reactor,
                data_plane=self._data_plane,
                settings=SETTINGS,
            )
            service = ControlService(
                node,
                issue(authority, address),
                reactor=reactor,
                port=port,
                bind_address=address,
            )
            self.access_points.append(access_point)
            self.nodes.append(node)
            self.services.append(service)

    def _data_plane(self, action) -> None:
        # A home AP starts tunnelling a traveler to the SC: the end of one
        # roam's notice chain.
        if isinstance(action, AddStaticEntry) and action.peer == IPv4Address(SC_ADDRESS):
            self.add_traveler_seen += 1

    @defer.inlineCallbacks
    def connect(self, batch: int = 50):
        for start in range(0, self.count, batch):
            for service in self.services[start : start + batch]:
                service.connect(IPv4Address(SC_ADDRESS))
                service.startService()
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        yield wait_until(self.reactor, self.all_connected, "every AP to connect")

    def all_connected(self) -> bool:
        return all(node.connection(IPv4Address(SC_ADDRESS)) is not None for node in self.nodes)

    def idle(self) -> bool:
        for node in self.nodes:
            connection = node.connection(IPv4Address(SC_ADDRESS))
            if connection is None or connection.outstanding or connection.queued:
                return False
        return True

    def errors(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for node in self.nodes:
            for code, count in node.counters.remote_errors.items():
                total[code.decode()] = total.get(code.decode(), 0) + count
            for name in ("idle_timeouts", "identify_timeouts", "queue_overflows"):
                total[name] = total.get(name, 0) + getattr(node.counters, name)
        return total


def associate(simulated: SimulatedAccessPoints, index: int, number: int, address) -> None:
    """
    Associate client C{number} with AP C{index} and report its IP address.
    """
    access_point, node = simulated.access_points[index], simulated.nodes[index]
    mac = client_mac(number)
    node.run(lambda now: access_point.station_associated(mac, now))
    node.run(lambda now: access_point.client_ip_seen(mac, address, now, prefix=22))


@defer.inlineCallbacks
def run_workload(reactor, arguments, port: int):
    directory = Path(arguments.dir)
    authority = (
        pki.load_certificate(directory / "ca.crt"),
        pki.load_private_key(directory / "ca.key"),
    )
    results: dict[str, object] = {
        "aps": arguments.aps,
        "clients": arguments.clients,
        "sc_database": arguments.sc_database,
    }
    sc_pid = arguments.sc_pid

    started = time.monotonic()
    simulated = SimulatedAccessPoints(reactor, authority, arguments.aps, port)
    results["ap_setup_s"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    yield simulated.connect()
    yield wait_until(reactor, simulated.idle, "the AP registrations")
    results["connect_s"] = round(time.monotonic() - started, 2)
    results["sc_after_connect"] = read_proc(sc_pid)

    per_ap = arguments.clients // arguments.aps
    if arguments.aps % APS_PER_SUBNET or arguments.aps < 2 * APS_PER_SUBNET or per_ap > 100:
        raise SystemExit(
            f"--aps must be a multiple of {APS_PER_SUBNET}, at least {2 * APS_PER_SUBNET},"
            " with at most 100 clients per AP"
        )
    clients = [(home, slot) for home in range(arguments.aps) for slot in range(per_ap)]

    # Phase 1: associations at home.
    before = read_proc(sc_pid)
    started = time.monotonic()
    for chunk_start in range(0, len(clients), CHUNK):
        for number in range(chunk_start, min(chunk_start + CHUNK, len(clients))):
            home, slot = clients[number]
            associate(simulated, home, number, client_ip(home, slot, per_ap))
        # Let the reactor send, receive and run keepalives between chunks.
        yield task.deferLater(reactor, 0, lambda: None)
    sent_s = time.monotonic() - started
    yield wait_until(reactor, simulated.idle, "the association answers")
    elapsed = time.monotonic() - started
    after = read_proc(sc_pid)
    results["associations"] = {
        "count": len(clients),
        "elapsed_s": round(elapsed, 2),
        "generate_s": round(sent_s, 2),
        "per_s": round(len(clients) / elapsed),
        "sc_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
        "sc_cpu_us_each": round((after["cpu_s"] - before["cpu_s"]) / len(clients) * 1e6, 1),
    }

    # Phase 2: every client roams to the next AP, in another subnet.
    before = read_proc(sc_pid)
    simulated.add_traveler_seen = 0
    started = time.monotonic()
    for chunk_start in range(0, len(clients), CHUNK):
        for number in range(chunk_start, min(chunk_start + CHUNK, len(clients))):
            home, slot = clients[number]
            foreign = (home + APS_PER_SUBNET) % arguments.aps
            associate(simulated, foreign, number, client_ip(home, slot, per_ap))
        yield task.deferLater(reactor, 0, lambda: None)
    sent_s = time.monotonic() - started
    yield wait_until(
        reactor,
        lambda: simulated.add_traveler_seen >= len(clients),
        "every home AP's AddTraveler",
    )
    elapsed = time.monotonic() - started
    yield wait_until(reactor, simulated.idle, "the roam answers")
    after = read_proc(sc_pid)
    results["roams"] = {
        "count": len(clients),
        "elapsed_s": round(elapsed, 2),
        "generate_s": round(sent_s, 2),
        "per_s": round(len(clients) / elapsed),
        "sc_cpu_s": round(after["cpu_s"] - before["cpu_s"], 2),
        "sc_cpu_us_each": round((after["cpu_s"] - before["cpu_s"]) / len(clients) * 1e6, 1),
    }
    results["sc_end"] = after
    own = read_proc(os.getpid())
    results["ap_process"] = {"rss_mib": own["rss_mib"], "cpu_s": own["cpu_s"]}
    results["remote_errors"] = simulated.errors()
    for service in simulated.services:
        service.stopService()
    print(json.dumps(results), flush=True)


def run_aps(arguments) -> None:
    raise_file_limit()
    start_logging()
    gc.freeze()
    task.react(lambda reactor: run_workload(reactor, arguments, arguments.port))


# Convergence of many SCs.


@defer.inlineCallbacks
def run_convergence(reactor, arguments):
    directory = Path(arguments.dir)
    authority = (
        pki.load_certificate(directory / "ca.crt"),
        pki.load_private_key(directory / "ca.key"),
    )
    count = arguments.scs
    addresses = [f"127.2.0.{index + 1}" for index in range(count)]
    primary = IPv4Address(addresses[0])
    controllers: list[ServiceController] = []
    services: list[ControlService] = []
    l3_entries: list[list[AddL3Entry]] = []
    ports: dict[str, int] = {}

    for index, address in enumerate(addresses):
        entries: list[AddL3Entry] = []
        l3_entries.append(entries)
        controller = ServiceController(
            IPv4Address(address),
            ClientDatabase(":memory:"),
            primary=primary,
            subnets=[IPv4Network(f"10.{100 + index}.0.0/16")],
        )

        def data_plane(action, entries=entries) -> None:
            if isinstance(action, AddL3Entry):
                entries.append((time.monotonic(), action))

        node = ControlNode(
            ServiceControllerBinding(controller), clock=reactor, data_plane=data_plane
        )

        def endpoint_for(peer, address=address):
            client_tls = ClientTLS(services_by_address[address].credentials, str(peer))
            return client_endpoint(
                reactor, client_tls, str(peer), ports[str(peer)], bind_address=address
            )

        service = ControlService(
            node,
            issue(authority, address),
            reactor=reactor,
            listen_endpoint=lambda tls, address=address: server_endpoint(reactor, tls, 0, address),
            endpoint_for=endpoint_for,
        )
        controllers.append(controller)
        services.append(service)

    services_by_address = dict(zip(addresses, services, strict=True))
    for address, service in services_by_address.items():
        service.startService()
        listening = yield service.listening
        ports[address] = listening.getHost().port
    for service in services[1:]:
        service.connect(primary)

    def everyone_knows_everyone() -> bool:
        return all(len(controller.discovery.peers()) == count - 1 for controller in controllers)

    started = time.monotonic()
    yield wait_until(reactor, everyone_knows_everyone, "the initial discovery", limit=120)
    results: dict[str, object] = {
        "scs": count,
        "initial_discovery_s": round(time.monotonic() - started, 3),
    }
    yield task.deferLater(reactor, 0.5, lambda: None)

    # A change: the last SC gains a subnet; the primary announces it.
    new_subnet = IPv4Network("10.250.0.0/16")
    changed = controllers[-1]
    mark = [len(entries) for entries in l3_entries]
    started = time.monotonic()
    services[-1].node.run(
        lambda now: changed.discovery.set_subnets([*changed.discovery.subnets, new_subnet], now)
    )

    def change_applied() -> bool:
        return all(
            any(action.network == new_subnet for _, action in entries[mark[index] :])
            for index, entries in enumerate(l3_entries[:-1])
        )

    yield wait_until(reactor, change_applied, "the subnet change", limit=60)
    last = max(
        moment
        for index, entries in enumerate(l3_entries[:-1])
        for moment, action in entries[mark[index] :]
        if action.network == new_subnet
    )
    results["subnet_change_s"] = round(last - started, 4)

    # A reconfiguration: the primary starts a new discovery round.
    started = time.monotonic()
    services[0].node.run(lambda now: controllers[0].reconfigure(now))
    target_round = controllers[0].registry.round

    def round_done() -> bool:
        registry = controllers[0].registry
        return all(
            controller.discovery.round == target_round for controller in controllers[1:]
        ) and all(
            registry.state_of(IPv4Address(address)).value == "registered" for address in addresses
        )

    yield wait_until(reactor, round_done, "the discovery round", limit=60)
    results["discovery_round_s"] = round(time.monotonic() - started, 4)
    for service in services:
        service.stopService()
    print(json.dumps(results), flush=True)


def run_converge(arguments) -> None:
    raise_file_limit()
    start_logging()
    task.react(lambda reactor: run_convergence(reactor, arguments))


# The SC role object alone, without the network.


def run_core(arguments) -> None:
    """
    Feed the association and roam messages straight to a ServiceController
    and print its CPU time per operation for each kind of client database.
    """
    from roaming.control import messages

    aps, per_ap = arguments.aps, arguments.clients // arguments.aps
    results = {}
    with tempfile.TemporaryDirectory(prefix="rmbench-core-") as directory:
        paths = {"none": None, "memory": ":memory:", "file": str(Path(directory) / "sc.sqlite")}
        for name, path in paths.items():
            controller = ServiceController(
                IPv4Address(SC_ADDRESS),
                ClientDatabase(path, max_clients=arguments.clients * 2),
                primary=IPv4Address(SC_ADDRESS),
                share_client_cache=False,
                max_access_points=aps + 16,
            )
            controller.start(0.0)
            addresses = [IPv4Address(ap_address(index)) for index in range(aps)]
            for index, address in enumerate(addresses):
                controller.receive(address, messages.ApRegister(address, [ap_subnet(index)]), 0.0)
            timings = {}
            for phase in ("associations", "roams"):
                started = time.process_time()
                for number in range(aps * per_ap):
                    home, slot = divmod(number, per_ap)
                    at = home if phase == "associations" else (home + APS_PER_SUBNET) % aps
                    mac, address = client_mac(number), client_ip(home, slot, per_ap)
                    sender = addresses[at]
                    controller.receive(sender, messages.IappAdd(mac), 1.0)
                    controller.receive(sender, messages.IappAdd(mac, address, 22), 1.0)
                    if phase == "associations":
                        notice = messages.ApDeleteTraveler(mac, address)
                    else:
                        notice = messages.ApAddTraveler(mac, address, 22)
                    controller.receive(sender, notice, 1.0)
                elapsed = time.process_time() - started
                timings[phase] = round(elapsed / (aps * per_ap) * 1e6, 1)
            controller.db.close()
            results[name] = timings
    print(json.dumps({"cpu_us_each": results}, indent=2))


# The parent.


def start_child(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, *arguments],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])),
    )


def run_all(arguments) -> None:
    directory = Path(tempfile.mkdtemp(prefix="rmbench-control-"))
    now = utc_now()
    ca_certificate, ca_key = pki.create_ca("benchmark CA", now=now - datetime.timedelta(hours=1))
    pki.write_certificate(directory / "ca.crt", ca_certificate)
    pki.write_private_key(directory / "ca.key", ca_key)
    credentials = issue((ca_certificate, ca_key), SC_ADDRESS)
    pki.write_certificate(directory / "sc.crt", credentials.certificate)
    pki.write_private_key(directory / "sc.key", credentials.private_key)
    common = ["--dir", str(directory), "--aps", str(arguments.aps)]
    common += ["--clients", str(arguments.clients), "--sc-database", arguments.sc_database]

    results: dict[str, object] = {}
    try:
        sc = start_child("sc", *common)
        try:
            line = sc.stdout.readline().split()
            if line[:1] != ["listening"]:
                raise RuntimeError(f"the SC process did not start: {line}")
            aps = start_child("aps", *common, "--port", line[1], "--sc-pid", str(sc.pid))
            output, _ = aps.communicate(timeout=PHASE_LIMIT * 3)
            if aps.returncode != 0:
                raise RuntimeError(f"the AP process failed with status {aps.returncode}")
            results["sc"] = json.loads(output.strip().splitlines()[-1])
        finally:
            sc.terminate()
            try:
                sc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sc.kill()
                sc.wait(timeout=30)

        converge = start_child("converge", *common, "--scs", str(arguments.scs))
        output, _ = converge.communicate(timeout=PHASE_LIMIT)
        results["convergence"] = json.loads(output.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "role", nargs="?", default="all", choices=["all", "sc", "aps", "converge", "core"]
    )
    parser.add_argument("--aps", type=int, default=1000, help="simulated APs")
    parser.add_argument("--clients", type=int, default=50_000, help="clients (a multiple of --aps)")
    parser.add_argument("--scs", type=int, default=20, help="SCs in the convergence run")
    parser.add_argument(
        "--sc-database",
        choices=["file", "memory", "none"],
        default="file",
        help="the SC's client database: an SQLite file (default), SQLite in memory, or none",
    )
    parser.add_argument("--dir", help="directory with the CA and SC files (child processes)")
    parser.add_argument("--port", type=int, help="SC port (aps process)")
    parser.add_argument("--sc-pid", type=int, help="SC process ID (aps process)")
    arguments = parser.parse_args()
    if arguments.role == "sc":
        run_sc(arguments)
    elif arguments.role == "aps":
        run_aps(arguments)
    elif arguments.role == "converge":
        run_converge(arguments)
    elif arguments.role == "core":
        run_core(arguments)
    else:
        run_all(arguments)


if __name__ == "__main__":
    main()
