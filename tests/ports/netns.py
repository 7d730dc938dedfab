"""
Network namespaces for the tests and the benchmark that need real devices.

Every namespace is named C{rmtst-ports-<pid>-<serial><suffix>} and removed by the
context manager that created it, even when the test fails.
"""

import contextlib
import ctypes
import itertools
import os
import shutil
import subprocess

import pytest

__all__ = [
    "CAN_USE_NETNS",
    "Namespace",
    "inside",
    "namespaces",
    "requires_netns",
    "run",
]

_CLONE_NEWNET = 0x40000000
_serial = itertools.count(1)
_libc = ctypes.CDLL(None, use_errno=True)


def _netns_missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    return None


_MISSING = _netns_missing_reason()
CAN_USE_NETNS = _MISSING is None

requires_netns = [
    pytest.mark.netns,
    pytest.mark.skipif(not CAN_USE_NETNS, reason=_MISSING or ""),
]
"""Marks of a test that creates namespaces: apply with C{pytestmark = ...}."""


def run(*command: str, timeout: float = 10.0) -> str:
    """
    Run C{command}, raise on a non-zero exit, and return its standard output.
    """
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {completed.returncode}: {completed.stderr.strip()}"
        )
    return completed.stdout


class Namespace:
    """
    One network namespace created for a test, with its loopback up and IPv6
    off (so the kernel sends no router or multicast-listener solicitations
    that tests would have to filter).
    """

    def __init__(self, suffix: str) -> None:
        # The serial number keeps names unique when topologies overlap.
        self.name = f"rmtst-ports-{os.getpid()}-{next(_serial)}{suffix}"

    def create(self) -> None:
        run("ip", "netns", "add", self.name)
        self.ip("link", "set", "lo", "up")
        self.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        self.exec("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)

    def ip(self, *arguments: str) -> str:
        """
        Run C{ip -n <namespace> arguments}.
        """
        return run("ip", "-n", self.name, *arguments)

    def exec(self, *command: str, timeout: float = 10.0) -> str:
        """
        Run C{command} inside the namespace and return its output.
        """
        return run("ip", "netns", "exec", self.name, *command, timeout=timeout)

    def popen(self, *command: str, **kwargs) -> subprocess.Popen:
        """
        Start C{command} inside the namespace; the caller stops it.
        """
        return subprocess.Popen(["ip", "netns", "exec", self.name, *command], **kwargs)

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"


@contextlib.contextmanager
def namespaces(*suffixes: str):
    """
    Create one L{Namespace} per suffix and remove all of them on exit.
    """
    created = []
    try:
        for suffix in suffixes:
            namespace = Namespace(suffix)
            created.append(namespace)
            namespace.create()
        yield created
    finally:
        for namespace in created:
            namespace.delete()


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextlib.contextmanager
def inside(namespace: Namespace):
    """
    Run the body with this thread in C{namespace}, so that devices and
    sockets it opens belong there; they stay there after the body ends.
    """
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(namespace.path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(target)
        os.close(original)
