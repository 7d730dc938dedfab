# -*- test-case-name: tests.lab.test_topology -*-
"""
Tests for L{roaming.lab.topology} on real namespaces, with kernel bridges as
the APs (the flat path): the network builds, DHCP and probes work, a client
can move between the cells of one subnet, and teardown removes everything.

These tests never roam across subnets: only the roaming daemons can do that.
"""

import itertools
import os
import subprocess
import sys

import pytest

from roaming.lab import dhcp
from roaming.lab.probe import read_results
from roaming.lab.processes import ProcessGroup, wait_for
from roaming.lab.topology import LabNetwork, default_plan, run_in

pytestmark = pytest.mark.netns


# A serial number per namespace set, so a set left behind by a failed removal
# cannot make the next test fail with "File exists".
_serial = itertools.count(1)


def namespaces_with(prefix):
    output = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[0] for line in output.splitlines() if line.startswith(prefix)]


@pytest.fixture
def flat_lab(netns_ready, tmp_path):
    plan = default_plan(f"rmtst-lab-{os.getpid()}-{next(_serial)}", clients=2)
    network = LabNetwork(plan, flat=True)
    processes = ProcessGroup(tmp_path)
    network.build()
    try:
        yield plan, network, processes, tmp_path
    finally:
        processes.stop_all()
        network.destroy()


def start_services(plan, processes, directory):
    for subnet in plan.subnets:
        processes.start(
            f"dnsmasq-{subnet.name}",
            plan.namespace(f"dhcp-{subnet.name}"),
            dhcp.dnsmasq_command(subnet, directory),
        )
    processes.start(
        "echo", plan.namespace("host-a"), [sys.executable, "-m", "roaming.lab.probe", "echo"]
    )


def lease(plan, processes, directory, client):
    script = dhcp.write_udhcpc_script(directory)
    events = dhcp.client_events_path(directory, client)
    process = processes.start(
        f"udhcpc-{client.name}",
        plan.namespace(client.name),
        dhcp.udhcpc_command(script),
        environment={"ROAMING_LAB_DHCP_EVENTS": str(events)},
    )
    bound = wait_for(
        lambda: [e for e in dhcp.read_lease_events(events) if e.kind == "bound"],
        timeout=20,
        what="a DHCP lease",
    )
    return process, bound[-1]


def udp_datagrams_sent(namespace):
    """
    Return the UDP datagrams sent in C{namespace}: the C{OutDatagrams} field
    of C{/proc/net/snmp}.
    """
    rows = [
        line.split()
        for line in run_in(namespace, ["cat", "/proc/net/snmp"]).splitlines()
        if line.startswith("Udp:")
    ]
    header, values = rows[0], rows[1]
    return int(values[header.index("OutDatagrams")])


def ping(plan, client, address):
    completed = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            plan.namespace(client.name),
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            address,
        ],
        capture_output=True,
        check=False,
    )
    return completed.returncode == 0


def test_build_and_teardown(netns_ready):
    plan = default_plan(f"rmtst-lab-{os.getpid()}-t", clients=1)
    network = LabNetwork(plan, flat=True)
    network.build()
    try:
        assert sorted(namespaces_with(plan.prefix + "-")) == sorted(plan.namespaces)
        links = run_in(plan.namespace("air"), ["ip", "-o", "link", "show", "master", "cell-ap-a1"])
        assert "sta-1" in links
        assert "ap-a1-air" in links
    finally:
        # An assert here would replace the failure of the checks above.
        problems = network.destroy()
    assert problems == []
    assert namespaces_with(plan.prefix + "-") == []


def test_dhcp_and_probes_over_flat_path(flat_lab):
    plan, _network, processes, directory = flat_lab
    start_services(plan, processes, directory)
    client = plan.clients[0]
    udhcpc, bound = lease(plan, processes, directory, client)
    assert bound.address.startswith("198.18.1.")
    assert bound.server == "198.18.1.2"

    probe = processes.start(
        "probe",
        plan.namespace(client.name),
        [
            sys.executable,
            "-m",
            "roaming.lab.probe",
            "client",
            "--server",
            "198.18.1.10",
            "--rate",
            "500",
            "--output",
            str(directory / "probe"),
        ],
    )
    wait_for(lambda: "ready" in probe.log_tail(), timeout=10, what="the probe")
    wait_for(
        lambda: udp_datagrams_sent(plan.namespace("host-a")) >= 400,
        timeout=30,
        interval=0.1,
        what="400 echoed probes",
    )

    dhcp.request_renewal(udhcpc.pid)
    events_path = dhcp.client_events_path(directory, client)
    renewed = wait_for(
        lambda: [e for e in dhcp.read_lease_events(events_path) if e.kind == "renew"],
        timeout=10,
        what="a renewal",
    )
    assert renewed[-1].address == bound.address

    processes.stop(probe, timeout=15)
    summary, send_ns, echo_ns = read_results(str(directory / "probe"))
    assert summary["count"] >= 400
    assert summary["tcp_ok"]
    assert summary["tcp_error"] == ""
    answered = sum(1 for echo in echo_ns if echo)
    # A kernel path loses nothing at 500 probes per second; the margin covers
    # an echo delayed past the drain time on a loaded machine.
    assert answered >= 0.99 * summary["count"]
    assert all(echo > sent for sent, echo in zip(send_ns, echo_ns, strict=True))


def test_move_between_cells_of_one_subnet(flat_lab):
    plan, network, processes, directory = flat_lab
    start_services(plan, processes, directory)
    client = plan.clients[0]
    lease(plan, processes, directory, client)

    network.move_client(client, plan.node("ap-a2"))
    links = run_in(plan.namespace("air"), ["ip", "-o", "link", "show", "master", "cell-ap-a2"])
    assert "sta-1" in links
    assert ping(plan, client, "198.18.1.10")

    # In a cell of subnet B the kernel bridges cannot carry the client home.
    network.move_client(client, plan.node("ap-b1"))
    run_in(plan.namespace(client.name), ["ip", "neigh", "flush", "dev", "wlan0"])
    assert not ping(plan, client, "198.18.1.10")


def test_second_client_gets_own_lease(flat_lab):
    plan, _network, processes, directory = flat_lab
    start_services(plan, processes, directory)
    _, first = lease(plan, processes, directory, plan.clients[0])
    _, second = lease(plan, processes, directory, plan.clients[1])
    assert first.address != second.address
    mac = run_in(plan.namespace(plan.clients[1].name), ["cat", "/sys/class/net/wlan0/address"])
    assert mac.strip() == "02:00:00:00:00:02"
