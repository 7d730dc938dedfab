# -*- test-case-name: tests.lab.test_lab -*-
"""
The lab's default scenario with the real daemons: one client roams home AP
-> AP in B -> other AP in B -> home AP -> other AP in A while probing.

Runs C{roaming-lab} in a child process (it runs a reactor thread, and a
reactor cannot be restarted in the test process) and checks its JSON report.
"""

import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.lab]

KINDS = ["home-to-foreign", "within-foreign", "foreign-to-home", "within-home"]


def daemons_missing():
    for module in ("roaming.tap.ap", "roaming.tap.sc"):
        if importlib.util.find_spec(module) is None:
            return f"the daemons are not installed ({module} is missing)"
    return None


@pytest.fixture(scope="module")
def lab_report(netns_ready, tmp_path_factory):
    reason = daemons_missing()
    if reason is not None:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("lab")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "roaming.lab.cli",
            "run",
            "--json",
            str(directory / "report.json"),
            "--plot",
            str(directory / "timeline.png"),
            "--logs",
            str(directory / "logs"),
            "--pcap",
            str(directory / "pcap"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    report_path = directory / "report.json"
    assert report_path.exists(), completed.stdout + completed.stderr
    report = json.loads(report_path.read_text())
    return completed, report, directory


def test_lab_exit_status(lab_report):
    completed, _report, _ = lab_report
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_every_roam_restored(lab_report):
    _, report, _ = lab_report
    roams = report["roams"]
    assert [roam["kind"] for roam in roams] == KINDS
    for roam in roams:
        assert roam["restored"], roam
        assert roam["interruption_ms"] is not None, roam
        assert roam["sent"] > 0, roam


def test_summary_fields(lab_report):
    _, report, _ = lab_report
    summary = report["summary"]
    for key in ("p50_interruption_ms", "p99_interruption_ms", "max_interruption_ms", "lost"):
        assert key in summary
    assert summary["restored"] == 4
    assert summary["p50_interruption_ms"] <= summary["max_interruption_ms"]


def test_client_kept_address(lab_report):
    _, report, _ = lab_report
    check = report["checks"]["client-1"]
    assert check["kept_address"], check
    assert check["address"].startswith("198.18.1.")


def test_arp_after_roams(lab_report):
    _, report, _ = lab_report
    assert report["checks"]["client-1"]["arp_after_flush"]


def test_dhcp_renewal_after_roams(lab_report):
    _, report, _ = lab_report
    assert report["checks"]["client-1"]["dhcp_renewal"]


def test_tcp_connection_survived(lab_report):
    _, report, _ = lab_report
    check = report["checks"]["client-1"]
    assert check["tcp_connection"], check


def test_plot_written(lab_report):
    _, _, directory = lab_report
    assert (directory / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def tshark_count(capture, display_filter):
    """
    Return how many packets of C{capture} match a tshark display filter.
    """
    completed = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(capture),
            "-Y",
            display_filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return len(completed.stdout.split())


def test_capture_shows_tunneled_probes(lab_report):
    if shutil.which("tshark") is None:
        pytest.skip("needs tshark")
    _, report, directory = lab_report
    client = report["checks"]["client-1"]["address"]
    captures = directory / "pcap"
    assert tshark_count(captures / "client-1.pcap", f"ip.src == {client} && udp.dstport == 7") > 0
    # Roamed probes cross the subnets inside GRE: an outer IPv4 header between
    # the SCs, then the client's own IPv4 header (tshark decodes both).
    between_scs = f"gre && ip.src == 198.18.2.11 && ip.dst == 198.18.1.11 && ip.src == {client}"
    assert tshark_count(captures / "router.pcap", between_scs) > 0


def test_nothing_left_behind(lab_report):
    completed, _, _ = lab_report
    prefix = next(
        line.split("namespaces ")[1].rstrip("*)")
        for line in completed.stdout.splitlines()
        if line.startswith("Building the lab network")
    )
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert prefix not in namespaces


def test_interrupt_removes_everything(netns_ready, tmp_path):
    reason = daemons_missing()
    if reason is not None:
        pytest.skip(reason)
    process = subprocess.Popen(
        [sys.executable, "-m", "roaming.lab.cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    lines = queue.Queue()

    def read_output():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    output = []
    try:
        # Interrupt while the daemons start, once the network is built: the
        # first "Starting" line marks that phase.
        deadline = time.monotonic() + 60
        while not any(line.startswith("Starting ") for line in output):
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            assert line is not None, "".join(output)
            output.append(line)
        assert output[0].startswith("Building the lab network"), output[0]
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while not lines.empty():
        line = lines.get()
        if line is not None:
            output.append(line)
    output = "".join(output)
    assert process.returncode == 130, output
    assert "interrupted; everything it created was removed" in output
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert f"rmlab-{process.pid}-" not in namespaces
    temporary = os.environ.get("TMPDIR", "/tmp")
    leftovers = [
        name for name in os.listdir(temporary) if name.startswith(f"roaming-lab-{process.pid}-")
    ]
    assert leftovers == []
