# -*- test-case-name: tests.daemons.test_devices_netns -*-
"""
L{roaming.tap.devices.SystemDevices} on a real interface, as root: a veth
pair in a network namespace that the test creates, where a child process
isolates the port and looks up its MAC address.
"""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]

CHILD = """
import sys
from roaming.tap.devices import SystemDevices
devices = SystemDevices()
devices.isolate_port(sys.argv[1])
print(devices.hardware_address(sys.argv[1]).hex(":"))
"""


def run(*command):
    """
    Run C{command} and return its standard output, raising on failure.
    """
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=20, check=False, cwd=REPOSITORY
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


# A serial number per namespace set, so a set left behind by a failed removal
# cannot make the next test fail with "File exists".
_serial = itertools.count(1)


@pytest.fixture
def namespace():
    name = f"rmtst-daemons-{os.getpid()}-{next(_serial)}-dev"
    run("ip", "netns", "add", name)
    try:
        run("ip", "-n", name, "link", "add", "port0", "type", "veth", "peer", "name", "peer0")
        run("ip", "-n", name, "link", "set", "port0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=20, check=False)


def sysctl(namespace, key):
    """
    Return the value of sysctl C{key} inside C{namespace}.
    """
    return run("ip", "netns", "exec", namespace, "sysctl", "-n", key)


def test_isolate_port_sets_sysctls(namespace):
    assert sysctl(namespace, "net.ipv4.conf.port0.arp_ignore") == "0"
    mac = run("ip", "netns", "exec", namespace, sys.executable, "-c", CHILD, "port0")
    assert sysctl(namespace, "net.ipv4.conf.port0.arp_ignore") == "1"
    assert sysctl(namespace, "net.ipv6.conf.port0.disable_ipv6") == "1"
    assert sysctl(namespace, "net.ipv4.conf.peer0.arp_ignore") == "0"
    link = run("ip", "-n", namespace, "-o", "link", "show", "port0")
    assert f"link/ether {mac} " in link
