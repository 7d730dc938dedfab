# -*- test-case-name: tests.lab.test_daemons -*-
"""
The roaming daemons of a lab run: their certificates, configuration files,
command lines, readiness, counters and roam-stage log lines.

Each SC and AP runs as C{twistd -n --pidfile= --logfile=<file> roaming-sc
--config <file>} (or C{roaming-ap}) inside its namespace. The
configuration follows docs/configuration.md: the node's own address on a
TAP interface, the namespace's C{lan0} as a packet-socket uplink, and for
an AP the radio on C{air0} with an emulated radio socket served by the lab.
SC1 is the primary SC.
"""

from __future__ import annotations

import datetime
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from roaming.lab.topology import LabPlan, Node

__all__ = [
    "StageEvent",
    "daemon_command",
    "parse_stage_events",
    "write_certificates",
    "write_config",
]

_STAGE_LINE = re.compile(
    r"Roam stage (?P<stage>\S+) for (?P<mac>[0-9a-f:]{17}) on (?P<node>\S+) "
    r"at (?P<timestamp>[0-9]+\.[0-9]+)"
)


@dataclass(frozen=True)
class StageEvent:
    """
    One roam stage a daemon logged, with its wall-clock time in seconds.
    """

    stage: str
    mac: str
    node: str
    timestamp: float


def write_certificates(plan: LabPlan, directory: Path) -> None:
    """
    Create a CA and a certificate for every SC and AP of C{plan} in
    C{directory}, as C{ca.crt}, C{<node>.crt} and C{<node>.key}.
    """
    from roaming.control import pki

    now = datetime.datetime.now(datetime.UTC)
    ca_certificate, ca_key = pki.create_ca("roaming-lab CA", now=now, days=2)
    pki.write_certificate(directory / "ca.crt", ca_certificate)
    for node in plan.nodes:
        if node.role not in ("sc", "ap"):
            continue
        certificate, key = pki.issue_certificate(
            ca_certificate,
            ca_key,
            node.name,
            now=now,
            ip_addresses=[str(node.address)],
            days=2,
        )
        pki.write_certificate(directory / f"{node.name}.crt", certificate)
        pki.write_private_key(directory / f"{node.name}.key", key)


def radio_socket(directory: Path, node: Node) -> Path:
    """
    Return the path of the emulated radio socket of AP C{node}.
    """
    return directory / f"radio-{node.name}.sock"


def roamctl_socket(directory: Path, node: Node) -> Path:
    """
    Return the path of the roamctl socket of C{node}.
    """
    return directory / f"{node.name}.roamctl"


def write_config(plan: LabPlan, node: Node, directory: Path) -> Path:
    """
    Write the TOML configuration of SC or AP C{node} and return its path.
    """
    subnet = node.subnet
    primary = plan.node("sc1").address
    lines = [
        "# Written by roaming-lab for one run.",
        "[node]",
        f'name = "{node.name}"',
        f'address = "{node.address}"',
        f"prefix = {subnet.network.prefixlen}",
        f'gateway = "{subnet.gateway}"',
        "",
        "[tls]",
        'ca = "ca.crt"',
        f'certificate = "{node.name}.crt"',
        f'key = "{node.name}.key"',
        "",
        "[control]",
    ]
    if node.role == "sc":
        lines.append(f'primary = "{primary}"')
    else:
        lines.append(f'controller = "{plan.node(node.controller).address}"')
    lines += [
        # Six daemons and the probe traffic share the machine's CPUs, so a
        # busy daemon may reply late: allow 5 missed keepalives, not 3.
        "keepalive_misses = 5",
        "reconnect_initial = 0.1",
        "reconnect_max = 1.0",
        "",
        "[[subnet]]",
        f'network = "{subnet.network}"',
        "",
    ]
    if node.role == "sc":
        lines += ["[database]", f'path = "{node.name}.sqlite"', ""]
    else:
        lines += [
            "[[vsc]]",
            "id = 1",
            'name = "lab"',
            "",
            "[ports.radio]",
            'kind = "emulated"',
            'interface = "air0"',
            f'control = "{radio_socket(directory, node)}"',
            "",
        ]
    lines += [
        "[ports.lan]",
        'interface = "lan0"',
        'kind = "packet"',
        "",
        "[roamctl]",
        f'socket = "{roamctl_socket(directory, node)}"',
        "",
    ]
    path = directory / f"{node.name}.toml"
    path.write_text("\n".join(lines))
    return path


def daemon_command(node: Node, config: Path, log_file: Path) -> list[str]:
    """
    Return the twistd command line that runs C{node}'s daemon in the
    foreground, without a pid file.
    """
    twistd = Path(sys.executable).with_name("twistd")
    program = [str(twistd)] if twistd.exists() else [sys.executable, "-m", "twisted"]
    return [
        *program,
        "-n",
        "--pidfile=",
        f"--logfile={log_file}",
        f"roaming-{node.role}",
        "--config",
        str(config),
    ]


def parse_stage_events(text: str) -> list[StageEvent]:
    """
    Extract the roam-stage events from a daemon's text log.
    """
    events = []
    for match in _STAGE_LINE.finditer(text):
        events.append(
            StageEvent(
                stage=match["stage"],
                mac=match["mac"],
                node=match["node"],
                timestamp=float(match["timestamp"]),
            )
        )
    return events
