# -*- test-case-name: tests.daemons.test_netns -*-
"""
Both daemons for real, as root: roaming-sc and roaming-ap run under twistd
from their etc/ examples, each in its own network namespace, joined by a
kernel bridge standing in for the LAN switch. roamctl reads their state,
a client namespace behind the AP's radio interface reaches the SC through
both bridges, and SIGTERM stops both cleanly.
"""

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roaming import roamctl
from tests.daemons.fakes import example_config

REPOSITORY = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).parent / "twistd"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    if not TWISTD.exists():
        return f"needs twistd next to {sys.executable}"
    return None


pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]

# Bounds of every wait, in seconds.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def run(*command, timeout=10.0, check=True):
    """
    Run C{command} and return its standard output.
    """
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {completed.stderr.strip()}")
    return completed


# A serial number per namespace set, so a set left behind by a failed removal
# cannot make the next test fail with "File exists".
_serial = itertools.count(1)


class Topology:
    """
    Namespaces C{switch}, C{sc}, C{ap} and C{client}, named after this
    process: a kernel bridge in C{switch} joins the LAN interfaces of the
    SC and the AP, and the AP's radio interface is a veth pair whose other
    end is the client's C{eth0} (10.1.0.50/24).
    """

    def __init__(self):
        tag = f"{os.getpid()}"
        self.prefix = f"rmtst-dmn-{tag}-{next(_serial)}"
        self.names = {role: f"{self.prefix}-{role}" for role in ("switch", "sc", "ap", "client")}
        short = tag[-6:]
        # Interface names must fit in 15 bytes; they are unique per namespace.
        self.sc_lan = f"rds{short}"
        self.ap_lan = f"rda{short}"
        self.radio = f"rdw{short}"
        self.created = []

    def ns(self, role, *command, **kwargs):
        return run("ip", "netns", "exec", self.names[role], *command, **kwargs)

    def build(self):
        for role, name in self.names.items():
            run("ip", "netns", "add", name)
            self.created.append(name)
            self.ns(role, "ip", "link", "set", "lo", "up")
            self.ns(role, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        self.ns("switch", "ip", "link", "add", "br0", "type", "bridge")
        self.ns("switch", "ip", "link", "set", "br0", "up")
        for role, interface in (("sc", self.sc_lan), ("ap", self.ap_lan)):
            peer = f"{interface}p"
            self.ns("switch", "ip", "link", "add", peer, "type", "veth", "peer", "name", interface)
            self.ns("switch", "ip", "link", "set", interface, "netns", self.names[role])
            self.ns("switch", "ip", "link", "set", peer, "master", "br0", "up")
            self.ns(role, "ip", "link", "set", interface, "up")
        self.ns("ap", "ip", "link", "add", self.radio, "type", "veth", "peer", "name", "eth0")
        self.ns("ap", "ip", "link", "set", "eth0", "netns", self.names["client"])
        self.ns("ap", "ip", "link", "set", self.radio, "up")
        self.ns("client", "ip", "address", "add", "10.1.0.50/24", "dev", "eth0")
        self.ns("client", "ip", "link", "set", "eth0", "up")

    def destroy(self):
        for name in reversed(self.created):
            run("ip", "netns", "delete", name, check=False)
        self.created.clear()


class Daemon:
    """
    One twistd process in a namespace, stopped by its PID.
    """

    def __init__(self, topology, role, config, log):
        self.log = log
        command = [
            "ip", "netns", "exec", topology.names[role],
            str(TWISTD), "--nodaemon", "--pidfile=", f"--logfile={log}",
            f"roaming-{role}", "--config", str(config),
        ]  # fmt: skip
        environment = dict(os.environ, PYTHONPATH=str(REPOSITORY))
        self.process = subprocess.Popen(
            command, cwd=REPOSITORY, env=environment, stderr=subprocess.PIPE, text=True
        )

    def stop(self):
        """
        Send SIGTERM, wait, and return the exit status (SIGKILL after the
        timeout).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            return None

    def log_text(self):
        return self.log.read_text() if self.log.exists() else ""


def wait_for(check, what, daemons):
    """
    Poll C{check} until it returns a true value or L{START_TIMEOUT} passes.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for daemon in daemons:
            if daemon.process.poll() is not None:
                pytest.fail(
                    f"daemon exited with {daemon.process.returncode} while waiting for {what}:\n"
                    f"{daemon.process.stderr.read()}\n{daemon.log_text()}"
                )
        with contextlib.suppress(roamctl.RoamctlError):
            result = check()
            if result:
                return result
        time.sleep(0.1)
    logs = "\n".join(daemon.log_text()[-3000:] for daemon in daemons)
    pytest.fail(f"timed out after {START_TIMEOUT} s waiting for {what}\n{logs}")


def records(socket_path, request):
    """
    Return roamctl's reply to C{request} as a list of dicts.
    """
    reply = roamctl.query(socket_path, request, timeout=2.0)
    return [dict(zip(reply["columns"], row, strict=True)) for row in reply["rows"]]


@pytest.fixture
def topology():
    built = Topology()
    try:
        built.build()
        yield built
    finally:
        built.destroy()


@pytest.mark.parametrize("transport", ["ip", "udp"])
def test_daemons_run_in_namespaces(tmp_path, topology, transport):
    gre = {'# transport = "ip"': f'transport = "{transport}"'}
    sc_config = example_config(
        tmp_path,
        "sc",
        **{
            'interface = "eth0"': f'interface = "{topology.sc_lan}"',
            'listen = "127.0.0.1:9380"': 'listen = "127.0.0.1:19380"',
            **gre,
        },
    )
    ap_config = example_config(
        tmp_path,
        "ap",
        **{
            **gre,
            'interface = "eth0"': f'interface = "{topology.ap_lan}"',
            'kind = "hostapd"\ninterface = "wlan0"\ncontrol = "/var/run/hostapd"': (
                f'kind = "emulated"\ninterface = "{topology.radio}"\n'
                f'control = "{tmp_path / "radio.sock"}"'
            ),
        },
    )
    sc_socket, ap_socket = tmp_path / "sc1.sock", tmp_path / "ap1.sock"
    daemons = []
    try:
        daemons.append(Daemon(topology, "sc", sc_config, tmp_path / "sc.log"))
        daemons.append(Daemon(topology, "ap", ap_config, tmp_path / "ap.log"))

        status = wait_for(lambda: records(sc_socket, "status"), "roamctl status of sc1", daemons)
        assert {row["key"]: row["value"] for row in status}["is_primary"] is True

        def sc_up_at_ap():
            peers = records(ap_socket, "peers")
            return [peer for peer in peers if peer["state"] == "up"]

        (peer,) = wait_for(sc_up_at_ap, "the AP's control connection to the SC", daemons)
        assert (peer["peer"], peer["role"], peer["direction"]) == ("10.1.0.2", "sc", "out")

        ping = topology.ns("client", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.0.2")
        assert " 0% packet loss" in ping.stdout

        (client_link,) = json.loads(
            topology.ns("client", "ip", "-j", "link", "show", "eth0").stdout
        )
        client_mac = client_link["address"]
        sc_fdb = records(sc_socket, "fdb")
        assert [row["port"] for row in sc_fdb if row["mac"] == client_mac] == [topology.sc_lan]
        ap_fdb = records(ap_socket, "fdb")
        ((ap_port, ap_ip),) = [
            (row["port"], row["ip"]) for row in ap_fdb if row["mac"] == client_mac
        ]
        assert (ap_port, ap_ip) == (topology.radio, "10.1.0.50")
        ap_l3 = records(ap_socket, "l3")
        assert [(row["network"], row["match"]) for row in ap_l3] == [("10.1.0.0/24", "negative")]

        def tunnel_up_at_ap():
            return [row for row in records(ap_socket, "tunnels") if row["link"] == "up"]

        (tunnel,) = wait_for(tunnel_up_at_ap, "GRE keepalives between AP and SC", daemons)
        assert (tunnel["peer"], tunnel["control_up"]) == ("10.1.0.2", True)
        assert tunnel["port"] == "gre-sc"
        assert tunnel["transport"] == transport
        counters = records(sc_socket, "counters")
        assert any(row["name"] == "bridge_frames" and row["value"] > 0 for row in counters)

        fetch = (
            "import urllib.request; url = 'http://127.0.0.1:19380/metrics';"
            "print(urllib.request.urlopen(url, timeout=5).read().decode())"
        )
        metrics = topology.ns("sc", sys.executable, "-c", fetch)
        assert 'roaming_fdb_entries{node="sc1",vlan="0"}' in metrics.stdout
    finally:
        statuses = [daemon.stop() for daemon in daemons]
    # twistd stops cleanly on SIGTERM, then exits by that signal to report it.
    assert statuses == [-signal.SIGTERM, -signal.SIGTERM], [d.log_text()[-3000:] for d in daemons]
    for daemon, name in zip(daemons, ("roaming-sc sc1", "roaming-ap ap1"), strict=True):
        log = daemon.log_text()
        assert f"Stopping {name}" in log
        assert "Server Shut Down." in log
        assert "Traceback" not in log, log
    links = json.loads(topology.ns("ap", "ip", "-j", "link", "show").stdout)
    assert "rmbr0" not in [link["ifname"] for link in links]
    assert not sc_socket.exists()


def test_failed_start_exits_with_status(tmp_path, topology):
    config = example_config(tmp_path, "sc", **{'interface = "eth0"': 'interface = "rdmissing0"'})
    daemon = Daemon(topology, "sc", config, tmp_path / "sc.log")
    try:
        status = daemon.process.wait(timeout=START_TIMEOUT)
    finally:
        daemon.stop()
    assert status == 1
    log = daemon.log_text()
    assert "roaming-sc sc1 failed to start" in log
    assert "rdmissing0" in log
    links = json.loads(topology.ns("sc", "ip", "-j", "link", "show").stdout)
    assert "rmbr0" not in [link["ifname"] for link in links]
