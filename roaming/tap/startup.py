# -*- test-case-name: tests.daemons.test_services -*-
"""
Start-up failures of a daemon, described as configuration problems.

A daemon's start can still fail after its configuration passed every
check: an interface that does not exist, an address the node lacks, a
port that another program uses. L{describe_start_failure} turns such an
error into one L{roaming.config.Problem} line, C{FILE: KEY: reason}, naming
the configuration key to change, so the daemon can log that line and exit
instead of printing a traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from twisted.internet.error import CannotListenError

from roaming.config import Config, Problem

__all__ = ["STAGES", "describe_start_failure"]

# Configuration key of each start step, in start order, for an error that
# names no interface.
STAGES = {
    "ports": "ports",
    "database": "database.path",
    "control": "control.port",
    "roamctl": "roamctl.socket",
    "metrics": "metrics.listen",
}

# Hints for the errno values that a start-up error carries most often.
_HINTS = {
    errno.EADDRINUSE: "another program uses it; stop that program or choose another port",
    errno.EADDRNOTAVAIL: "the node has no such address; use one of its own addresses",
    errno.EACCES: "permission denied; run the daemon as root",
    errno.EPERM: "permission denied; run the daemon as root",
    errno.ENODEV: "no such interface; create it or name an existing one",
    errno.ENOENT: "no such file or directory; create the directory or choose another path",
}

_NET_DIRECTORY = Path("/sys/class/net")


def describe_start_failure(config: Config, stage: str, error: BaseException) -> Problem | None:
    """
    Describe C{error}, raised while starting C{stage} (a key of
    L{STAGES}), as a problem with the configuration key to change.

    @return: the problem, or C{None} if C{error} is not an operating
        system or database error and so more likely a bug than a setting.
    """
    path = str(config.path)
    if isinstance(error, sqlite3.Error):
        return Problem(
            path,
            "database.path",
            f"cannot open the client database {config.database.path}: {error}; "
            f"check that the file is an SQLite database in a writable directory",
        )
    system_error = _system_error(error)
    if system_error is None:
        return None
    interface = _interface_of(error)
    if interface is not None:
        key = _key_for_interface(config, interface)
        if key is not None:
            return Problem(path, key, _interface_reason(key, interface, system_error))
    key = STAGES.get(stage, stage)
    return Problem(path, key, f"{_what(config, key)}: {_reason(system_error)}")


def _system_error(error: BaseException) -> OSError | None:
    if isinstance(error, CannotListenError):
        inner = error.socketError
        if isinstance(inner, OSError):
            return inner
        return OSError(str(inner))
    if isinstance(error, OSError):
        return error
    return None


def _interface_of(error: BaseException) -> str | None:
    # roaming.ports raise CannotListenError(None, interface name, OSError).
    is_port_error = isinstance(error, CannotListenError) and error.interface is None
    if is_port_error and isinstance(error.port, str):
        return error.port
    return None


def _key_for_interface(config: Config, interface: str) -> str | None:
    if interface == config.node.interface:
        return "node.interface"
    for vlan in config.vlans:
        if interface == config.lan.interface_for_vlan(vlan):
            return "ports.lan.interface"
    if config.radio is not None and interface == config.radio.interface:
        return "ports.radio.interface"
    for index, vsc in enumerate(config.vscs):
        if interface == vsc.interface:
            return f"vsc[{index}].interface"
    return None


def _interface_reason(key: str, interface: str, error: OSError) -> str:
    if key == "node.interface":
        # The daemon creates this TAP, so it fails when the name is taken.
        return (
            f"cannot create TAP interface {interface}: {_reason(error)}; if another "
            f"interface has that name, choose an unused one"
        )
    if error.errno == errno.ENODEV or not (_NET_DIRECTORY / interface).exists():
        return (
            f"interface {interface} not found; create it (a VLAN port is "
            f"INTERFACE.VLAN) or name an existing interface"
        )
    return f"cannot open interface {interface}: {_reason(error)}"


def _what(config: Config, key: str) -> str:
    if key == "control.port":
        return f"cannot listen on {config.node.address}:{config.control.port}"
    if key == "roamctl.socket":
        return f"cannot listen on {config.roamctl.socket}"
    if key == "metrics.listen":
        return f"cannot listen on {config.metrics.host}:{config.metrics.port}"
    return "failed to start"


def _reason(error: OSError) -> str:
    text = error.strerror or str(error)
    hint = _HINTS.get(error.errno)
    return f"{text}; {hint}" if hint else text
