# -*- test-case-name: tests.ports.test_datapath_netns -*-
"""
A minimal forwarder: one bridge core, TAP and packet-socket ports, and one
GRE port with the tunnels given on the command line, run under the reactor.

It exists for the namespace tests, the datapath benchmark and manual
experiments; the daemons in L{roaming.tap} do the full wiring with the
control plane.  Example::

    python -m roaming.ports.forward --tap rtap0 \\
        --gre-ip 192.0.2.1 --tunnel 1:192.0.2.2:0x10

It prints C{ready} on standard output once every port is open, and writes
the port counters as JSON to C{--counters-file} when the reactor stops, which
SIGTERM and SIGINT make it do; a process killed otherwise writes nothing.
The JSON holds every counter, zero or not.
"""

import argparse
import json
import sys

from pyroute2.netlink.exceptions import NetlinkError
from twisted.internet import task
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from roaming.ports.dispatch import BridgeDispatcher
from roaming.ports.gre import GRE_IN_UDP_PORT, RawGrePort, UdpGrePort
from roaming.ports.packet import PacketSocketPort
from roaming.ports.tap import DEFAULT_READ_BUDGET, TapPort
from roaming.ports.tunnels import GreTunnel, GreTunnelTable
from roaming.tunnel.endpoint import DEFAULT_MAX_FRAME_SIZE
from roaming.tunnel.endpoint import GreEndpoint as TunnelEngine

__all__ = ["build_parser", "main", "parse_tunnel"]

_log = Logger()

EXPIRE_INTERVAL = 1.0
"""Seconds between calls of C{Bridge.expire}."""


def parse_tunnel(text: str) -> GreTunnel:
    """
    Parse C{AGG_ID:REMOTE:KEY}, for example C{1:192.0.2.2:0x10}.

    @raise argparse.ArgumentTypeError: the text does not have that form.
    """
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(
            f"invalid tunnel {text!r}: expected AGG_ID:REMOTE:KEY, such as 1:192.0.2.2:0x10"
        )
    try:
        return GreTunnel(agg_id=int(parts[0], 0), remote=parts[1], key=int(parts[2], 0))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid tunnel {text!r}: {e}") from e


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m roaming.ports.forward",
        description="Bridge TAP devices, interfaces and GRE tunnels through one bridge core.",
    )

    parser.add_argument(
        "--tap", action="append", default=[], metavar="NAME", help="TAP device to create or open"
    )

    parser.add_argument(
        "--packet",
        action="append",
        default=[],
        metavar="INTERFACE",
        help="existing interface to attach through a packet socket",
    )

    transport = parser.add_mutually_exclusive_group()
    transport.add_argument(
        "--gre-ip", metavar="LOCAL", help="local IPv4 address of a GRE port on IP protocol 47"
    )
    transport.add_argument(
        "--gre-udp",
        metavar="LOCAL",
        help=f"local IPv4 address of a GRE-in-UDP port (UDP {GRE_IN_UDP_PORT})",
    )

    parser.add_argument(
        "--tunnel",
        action="append",
        default=[],
        type=parse_tunnel,
        metavar="AGG_ID:REMOTE:KEY",
        help="tunnel of the GRE port; repeat for more",
    )

    parser.add_argument(
        "--endpoint",
        choices=["engine", "table"],
        default="engine",
        help="GRE framing: the tunnel engine (roaming.tunnel) or the port layer's "
        "static table (default: %(default)s)",
    )

    parser.add_argument(
        "--path-mtu",
        type=int,
        default=1500,
        help="IPv4 MTU of the path to every tunnel remote, in bytes (engine only; "
        "default: %(default)s)",
    )

    parser.add_argument(
        "--max-frame",
        type=int,
        default=DEFAULT_MAX_FRAME_SIZE,
        metavar="BYTES",
        help="largest frame the bridge forwards and the tunnel engine delivers, without "
        "FCS; match it to the MTU of the TAP devices and interfaces plus their Ethernet "
        "and VLAN headers (default: %(default)s, for a 1500-byte MTU and two VLAN tags)",
    )

    parser.add_argument(
        "--no-sequence",
        dest="sequence",
        action="store_false",
        help="send no GRE sequence numbers (engine only; the table always sends them)",
    )

    parser.add_argument(
        "--keepalive",
        type=float,
        metavar="SECONDS",
        help="keepalive period of every tunnel (engine only; default: no keepalives)",
    )

    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_READ_BUDGET,
        help="frames read per port and reactor wake-up (default: %(default)s)",
    )

    parser.add_argument(
        "--tap-queue",
        type=int,
        metavar="FRAMES",
        help="txqueuelen of every TAP device: frames the kernel holds for the forwarder "
        "to read (default: the kernel's, 1000)",
    )

    parser.add_argument(
        "--counters-file", metavar="PATH", help="write port counters here as JSON on exit"
    )
    return parser


def _gre_port(options):
    local = options.gre_ip or options.gre_udp
    if local is None:
        if options.tunnel:
            raise SystemExit("--tunnel needs a GRE port: add --gre-ip or --gre-udp")
        return None
    port_class = RawGrePort if options.gre_ip else UdpGrePort
    if options.endpoint == "table":
        endpoint = GreTunnelTable(local)
        for tunnel in options.tunnel:
            endpoint.add_tunnel(tunnel)
    else:
        endpoint = TunnelEngine(
            local, transport=port_class.transport, max_frame_size=options.max_frame
        )
        for tunnel in options.tunnel:
            endpoint.add_tunnel(
                tunnel.agg_id,
                tunnel.remote,
                tunnel.key,
                sequence=options.sequence,
                path_mtu=options.path_mtu,
                keepalive_period=options.keepalive,
            )
    return port_class(local, endpoint, budget=options.budget)


def _bridge(options):
    from roaming.bridge.core import Bridge

    return Bridge("forward", max_frame_size=options.max_frame)


def _counters(dispatcher: BridgeDispatcher) -> dict:
    ports = {}
    for number, port in dispatcher.ports().items():
        entry = port.counters.as_dict()
        if isinstance(port, TapPort):
            # None once the device was moved to another namespace.
            try:
                entry["device"] = port.device_statistics()
            except NetlinkError as e:
                entry["device"] = f"netlink error {e.code}"
        endpoint = getattr(port, "endpoint", None)
        if isinstance(endpoint, TunnelEngine):
            entry.update({f"tunnel.{name}": n for name, n in endpoint.counters.items()})
        elif endpoint is not None:
            entry["tunnel.unknown_peer"] = endpoint.counters.unknown_peer
            entry["tunnel.out_of_order"] = endpoint.counters.out_of_order
        ports[f"{number}:{port.name}"] = entry
    return {
        "ports": ports,
        "unknown_egress": dispatcher.unknown_egress,
        "bridge_errors": dispatcher.bridge_errors,
        "send_errors": dispatcher.send_errors,
        "bridge": dispatcher.bridge.counters(),
    }


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)

    from twisted.internet import reactor

    bridge = _bridge(options)
    dispatcher = BridgeDispatcher(bridge, clock=reactor)
    ports = [
        TapPort(name.encode(), budget=options.budget, tx_queue_length=options.tap_queue)
        for name in options.tap
    ]
    ports += [PacketSocketPort(name, budget=options.budget) for name in options.packet]
    gre = _gre_port(options)
    if gre is not None:
        ports.append(gre)
    if not ports:
        raise SystemExit("no ports: give at least one of --tap, --packet, --gre-ip, --gre-udp")

    for port in ports:
        dispatcher.attach(port)
    expiry = task.LoopingCall(lambda: bridge.expire(reactor.seconds()))
    expiry.start(EXPIRE_INTERVAL, now=False)

    def write_counters() -> None:
        if options.counters_file:
            with open(options.counters_file, "w", encoding="utf-8") as stream:
                json.dump(_counters(dispatcher), stream, indent=1, default=str)
        _log.info("Forwarder stopping; counters: {counters}", counters=_counters(dispatcher))

    reactor.addSystemEventTrigger("before", "shutdown", write_counters)
    print("ready", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
