# -*- test-case-name: tests.lab.test_processes -*-
"""
Tests for L{roaming.lab.processes} in a namespace the test creates.
"""

import os
import signal

import pytest

from roaming.lab.processes import ProcessGroup, wait_for
from roaming.lab.topology import LabError

pytestmark = pytest.mark.netns


@pytest.fixture
def namespace(netns_ready):
    from pyroute2 import netns

    name = f"rmtst-lab-{os.getpid()}-proc"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)


@pytest.fixture
def group(tmp_path):
    """
    Return a process group whose processes are stopped after the test, even
    when it fails.
    """
    processes = ProcessGroup(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


def test_start_and_stop(namespace, group):
    process = group.start("sleeper", namespace, ["sleep", "30"])
    assert process.running()
    # sleep has no SIGTERM handler, so the signal ends it.
    assert group.stop(process) == -signal.SIGTERM
    assert not process.running()


def test_output_goes_to_log(namespace, tmp_path):
    group = ProcessGroup(tmp_path)
    process = group.start("talker", namespace, ["sh", "-c", "echo hello from $0"])
    wait_for(lambda: not process.running(), timeout=5, what="the program to exit")
    assert "hello from" in process.log_tail()


def test_check_alive_reports_exit(namespace, tmp_path):
    group = ProcessGroup(tmp_path)
    own_log = tmp_path / "own.log"
    own_log.write_text("daemon failed: bad key\n")
    process = group.start("failing", namespace, ["sh", "-c", "exit 3"], own_log_path=own_log)
    wait_for(lambda: not process.running(), timeout=5, what="the program to exit")
    with pytest.raises(LabError, match="exited with status 3") as raised:
        group.check_alive()
    assert "daemon failed: bad key" in str(raised.value)


def test_stop_all(namespace, group):
    processes = [group.start(f"sleeper-{n}", namespace, ["sleep", "30"]) for n in range(3)]
    group.stop_all()
    assert group.processes == []
    assert not any(process.running() for process in processes)


def test_wait_for_times_out():
    with pytest.raises(LabError, match=r"timed out after 0\.1 s waiting for nothing"):
        wait_for(lambda: False, timeout=0.1, interval=0.02, what="nothing")
