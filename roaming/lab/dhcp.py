# -*- test-case-name: tests.lab.test_topology -*-
"""
DHCP in the lab: dnsmasq as each subnet's server, BusyBox udhcpc as each
client's DHCP client.

udhcpc (Debian package C{udhcpc}) runs in the foreground for the whole run
and calls L{UDHCPC_SCRIPT} on every lease event; the script configures the
address and default route with C{ip} and appends one line per event to the
file named by C{ROAMING_LAB_DHCP_EVENTS}. SIGUSR1 makes udhcpc renew its
lease with a DHCPREQUEST sent to the server that granted it (RFC 2131
section 4.4.5, RENEWING state), which the lab uses to check renewal after
the roams.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from roaming.lab.topology import Client, Subnet

__all__ = [
    "UDHCPC_SCRIPT",
    "LeaseEvent",
    "dnsmasq_command",
    "read_lease_events",
    "udhcpc_command",
    "write_udhcpc_script",
]

#: Lease time the lab's DHCP servers grant; dnsmasq's minimum is 2 minutes.
LEASE_SECONDS = 600

UDHCPC_SCRIPT = """\
#!/bin/sh
# udhcpc event script written by roaming-lab. udhcpc sets $interface, $ip,
# $mask (prefix length), $router, $serverid and $lease for each event.
log_event() {
    echo "$1 ${ip:-} ${mask:-} ${serverid:-} ${lease:-}" >> "$ROAMING_LAB_DHCP_EVENTS"
}
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set dev "$interface" up
        log_event deconfig
        ;;
    bound|renew)
        # Keep an unchanged address in place, so a renewal never interrupts
        # open connections.
        if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$mask "; then
            ip -4 addr flush dev "$interface"
            ip -4 addr add "$ip/$mask" dev "$interface"
        fi
        if [ -n "$router" ]; then
            set -- "$1" $router
            ip -4 route replace default via "$2" dev "$interface"
        fi
        log_event "$1"
        ;;
    leasefail|nak)
        log_event "$1"
        ;;
esac
exit 0
"""


@dataclass(frozen=True)
class LeaseEvent:
    """
    One line of a client's DHCP event file.

    @ivar kind: udhcpc's event name: C{deconfig}, C{bound}, C{renew},
        C{leasefail} or C{nak}.
    """

    kind: str
    address: str
    server: str


def write_udhcpc_script(directory: Path) -> Path:
    """
    Write the udhcpc event script into C{directory} and return its path.
    """
    path = directory / "udhcpc.script"
    path.write_text(UDHCPC_SCRIPT)
    os.chmod(path, 0o755)
    return path


def udhcpc_command(script: Path) -> list[str]:
    """
    Return the udhcpc command line for a client's C{wlan0}.
    """
    return [
        "udhcpc",
        "-f",  # stay in the foreground, so the lab owns the process
        "-i",
        "wlan0",
        "-s",
        str(script),
        "-t",
        "10",  # discover attempts
        "-T",
        "1",  # seconds between attempts
        "-A",
        "1",  # seconds to wait after a failed round
    ]


def dnsmasq_command(subnet: Subnet, directory: Path) -> list[str]:
    """
    Return the dnsmasq command line serving DHCP on subnet C{subnet}.
    """
    first, last = subnet.pool
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",  # no DNS service
        "--interface=lan0",
        "--bind-dynamic",
        f"--dhcp-range={first},{last},{subnet.network.netmask},{LEASE_SECONDS}s",
        f"--dhcp-option=option:router,{subnet.gateway}",
        "--dhcp-authoritative",
        # The lab owns the pool, so skip the ICMP check dnsmasq makes before
        # each offer: it delays every first lease by about 3 s.
        "--no-ping",
        f"--dhcp-leasefile={directory / f'dnsmasq-{subnet.name}.leases'}",
        "--pid-file",
        "--log-dhcp",
        "--log-facility=-",
        "--user=root",
    ]


def read_lease_events(path: Path) -> list[LeaseEvent]:
    """
    Read a client's DHCP event file; a missing file has no events.
    """
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        fields = [*line.split(), "", "", "", ""]
        events.append(LeaseEvent(kind=fields[0], address=fields[1], server=fields[3]))
    return events


def request_renewal(pid: int) -> None:
    """
    Make the udhcpc process C{pid} renew its lease now.
    """
    os.kill(pid, signal.SIGUSR1)


def client_events_path(directory: Path, client: Client) -> Path:
    """
    Return the DHCP event file of C{client}.
    """
    return directory / f"{client.name}.dhcp"
