# -*- test-case-name: tests.daemons.test_services -*-
"""
Read-only views of a running daemon, for roamctl and Prometheus.

Each C{*_table} function reads a L{roaming.tap.service.NodeService} at that
moment and returns a L{roaming.tap.localapi.Table}; L{samples} returns the
counters and gauges for both C{roamctl counters} and the metrics endpoint.
Nothing here changes the daemon's state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from roaming.metrics import GAUGE, Sample
from roaming.tap.localapi import Table, View

__all__ = ["make_views", "samples"]


def _egress_names(service: Any, unit: Any) -> dict[tuple[int, int | None], str]:
    """
    Map every egress of a bridge to a readable name: the port name, or the
    peer address for a tunnel member.
    """
    names: dict[tuple[int, int | None], str] = {}
    for number, name in unit.port_names().items():
        names[(number, None)] = name
    datapath = service.datapath
    for gre in datapath.gre.values():
        for peer, agg_id in gre.tunnels.items():
            names[(gre.number, agg_id)] = f"{gre.port.name}:{peer}"
    return names


def _name(names: dict, port: int | None, agg_id: int | None) -> str | None:
    if port is None:
        return None
    return names.get((port, agg_id), f"{port}/{agg_id}" if agg_id is not None else str(port))


def status_table(service: Any) -> Table:
    """
    Describe the node: name, role, address, uptime and configuration.
    """
    config = service.config
    now = service.reactor.seconds()
    uptime = now - service.started_at if service.started_at is not None else None
    rows = [
        ("name", config.node.name),
        ("role", config.role),
        ("address", str(config.node.interface_address)),
        ("config", str(config.path)),
        ("uptime", uptime),
        ("vlans", ",".join(str(vlan) for vlan in config.vlans)),
        ("subnets", ",".join(str(subnet.network) for subnet in config.subnets)),
    ]
    rows.extend(service.status_rows())
    return Table(("key", "value"), rows)


def fdb_table(service: Any) -> Table:
    """
    List the forwarding database of every bridge.
    """
    now = service.reactor.seconds()
    rows = []
    for vlan, unit in sorted(service.datapath.units.items()):
        names = _egress_names(service, unit)
        for row in unit.bridge.fdb_rows(now):
            rows.append(
                (
                    vlan,
                    row["mac"],
                    row["ip"],
                    _name(names, row["port"], row["agg_id"]),
                    _name(names, row["src_port"], row["src_agg_id"]),
                    row["static"],
                    row["authorised"],
                    row.get("age"),
                )
            )
    columns = ("vlan", "mac", "ip", "port", "source_egress", "static", "authorised", "age")
    return Table(columns, rows)


def l3_table(service: Any) -> Table:
    """
    List the L3 knowledge database of every bridge, in lookup order.
    """
    rows = []
    for vlan, unit in sorted(service.datapath.units.items()):
        names = _egress_names(service, unit)
        for row in unit.bridge.l3_rows():
            rows.append(
                (vlan, row["network"], row["match"], _name(names, row["port"], row["agg_id"]))
            )
    return Table(("vlan", "network", "match", "egress"), rows)


def tunnels_table(service: Any) -> Table:
    """
    List the GRE tunnels with their port, member ID and flood setting.
    """
    datapath = service.datapath
    dispatcher = datapath.units[0].dispatcher
    rows = []
    for kind, peer, agg_id in datapath.tunnels():
        gre = datapath.gre[kind]
        peer_state = service.control.peers.get(peer) if service.control is not None else None
        connected = peer_state is not None and peer_state.connection is not None
        state = gre.engine.tunnel(agg_id)
        rows.append(
            (
                str(peer),
                gre.port.name,
                agg_id,
                service.config.gre.transport,
                state.link_state.name.lower(),
                state.frames_sent,
                state.frames_received,
                dispatcher.flood_enabled(gre.number, agg_id),
                connected,
            )
        )
    columns = (
        "peer",
        "port",
        "member",
        "transport",
        "link",
        "frames_sent",
        "frames_received",
        "flood",
        "control_up",
    )
    return Table(columns, rows)


def peers_table(service: Any) -> Table:
    """
    List the control peers: role, direction, state, and time connected.
    """
    control = service.control
    now = service.reactor.seconds()
    rows = []
    if control is not None:
        for address, peer in sorted(control.peers.items()):
            connection = peer.connection
            rows.append(
                (
                    str(address),
                    peer.role,
                    "out" if peer.outgoing else "in",
                    "up" if connection is not None else "connecting",
                    now - peer.since if peer.since is not None else None,
                    peer.connects,
                    connection.queued if connection is not None else None,
                )
            )
    return Table(("peer", "role", "direction", "state", "up_for", "connects", "queued"), rows)


def clients_table(service: Any) -> Table:
    """
    List the clients in the role's client records.
    """
    return Table(service.client_columns, service.client_rows())


def counters_table(service: Any) -> Table:
    """
    List every counter and gauge with its labels.
    """
    rows = []
    for sample in samples(service):
        labels = ",".join(f"{key}={value}" for key, value in sorted(sample.labels.items()))
        rows.append((sample.name, labels, sample.value))
    return Table(("name", "labels", "value"), rows)


def samples(service: Any) -> Iterator[Sample]:
    """
    Read every counter and gauge of the daemon.
    """
    datapath = service.datapath
    for vlan, unit in sorted(datapath.units.items()):
        yield from _bridge_samples(str(vlan), unit)
    for unit in datapath.units.values():
        for port in unit.dispatcher.ports().values():
            for name, value in port.counters.as_dict().items():
                counter, _, protocol = name.partition(".")
                labels = {"port": port.name}
                if protocol:
                    labels["protocol"] = protocol
                yield Sample(f"port_{counter}", value, labels=labels, documentation=_PORT_DOC)
    for kind, gre in datapath.gre.items():
        yield Sample(
            "gre_ignored",
            gre.port.ignored,
            labels={"port": gre.port.name},
            documentation="GRE packets dropped because they came from the other GRE port's peers",
        )
        for name, value in gre.engine.counters.items():
            yield Sample(
                "tunnel_events",
                value,
                labels={"port": gre.port.name, "event": name},
                documentation="GRE engine counts by event: packets framed, and drops by reason",
            )
        yield Sample("tunnels", len(gre.tunnels), kind=GAUGE, labels={"kind": kind})
    for stage, count in service.stages.counts.items():
        yield Sample("roam_stages", count, labels={"stage": stage}, documentation=_STAGE_DOC)
    control = service.control
    if control is not None:
        yield from _control_samples(control)
    iapp = getattr(service, "iapp", None)
    if iapp is not None:
        for name, value in attrs.asdict(iapp.counters).items():
            yield Sample(f"iapp_{name}", value, documentation=_IAPP_DOC[name])
    local_api = getattr(service, "local_api", None)
    if local_api is not None:
        yield from _local_api_samples(local_api)
    yield Sample("clients", len(service.client_rows()), kind=GAUGE)


_PORT_DOC = "Device port counters (frames, bytes, errors, drops)"
_STAGE_DOC = "Roam stages logged, by stage"
_IAPP_DOC = {
    "sent": "IEEE 802.11F ADD-notify packets sent",
    "received": "IEEE 802.11F ADD-notify packets received from other APs",
    "own": "IEEE 802.11F packets of this AP looped back, ignored",
    "decode_errors": "Malformed IEEE 802.11F packets, dropped",
    "send_errors": "IEEE 802.11F ADD-notify packets the socket failed to send",
}


def _bridge_samples(vlan: str, unit: Any) -> Iterator[Sample]:
    counters = unit.bridge.counters()
    for port, values in counters["ports"].items():
        for name, value in values.items():
            yield Sample(
                "bridge_frames",
                value,
                labels={"vlan": vlan, "port": port, "outcome": name},
                documentation="Frames received by the bridge, by ingress port and outcome",
            )
    for reason, value in counters["drops"].items():
        yield Sample(
            "bridge_drops",
            value,
            labels={"vlan": vlan, "reason": reason},
            documentation="Frames dropped by the bridge, by reason",
        )
    fdb = counters["fdb"]
    for name, value in fdb.items():
        if name == "entries":
            yield Sample("fdb_entries", value, kind=GAUGE, labels={"vlan": vlan})
        else:
            yield Sample(f"fdb_{name}", value, labels={"vlan": vlan})
    for protocol, value in counters["malformed"].items():
        yield Sample("bridge_malformed", value, labels={"vlan": vlan, "protocol": protocol})
    yield Sample("l3_entries", len(unit.bridge.l3), kind=GAUGE, labels={"vlan": vlan})
    yield Sample("flood_filtered", unit.dispatcher.flood_filtered, labels={"vlan": vlan})
    yield Sample(
        "dispatch_relayed",
        unit.dispatcher.relayed,
        labels={"vlan": vlan},
        documentation="LAN broadcasts relayed from one tunnel port to another",
    )
    yield Sample("dispatch_unknown_egress", unit.dispatcher.unknown_egress, labels={"vlan": vlan})
    yield Sample("dispatch_bridge_errors", unit.dispatcher.bridge_errors, labels={"vlan": vlan})
    yield Sample("dispatch_send_errors", unit.dispatcher.send_errors, labels={"vlan": vlan})


def _control_samples(control: Any) -> Iterator[Sample]:
    counters = control.counters
    for name in (
        "sent",
        "received",
        "identify_timeouts",
        "idle_timeouts",
        "queue_overflows",
        "oversized_boxes",
        "identity_mismatches",
        "pauses",
    ):
        yield Sample(f"control_{name}", getattr(counters, name))
    for code, value in counters.remote_errors.items():
        yield Sample("control_remote_errors", value, labels={"code": code.decode("ascii")})
    for code, value in counters.errors_sent.items():
        yield Sample("control_errors_sent", value, labels={"code": code.decode("ascii")})
    # The verify callback counts the peers whose certificate it rejects.
    # The control protocol counts the handshakes that fail before the
    # callback runs, so the two never count the same reason.
    tls_rejected = Counter(counters.tls_rejected)
    for reason, value in control.tls_counters.rejected.items():
        tls_rejected[reason.value] += value
    for reason, value in tls_rejected.items():
        yield Sample(
            "control_tls_rejected",
            value,
            labels={"reason": reason},
            documentation="Control connections rejected during the TLS handshake, by reason",
        )
    for reason, value in counters.protocol_errors.items():
        yield Sample(
            "control_protocol_errors",
            value,
            labels={"reason": reason},
            documentation="Control connections that broke the AMP framing, by reason",
        )
    yield Sample("control_messages_dropped", control.messages_dropped)
    yield Sample("control_action_errors", control.action_errors)
    yield Sample("static_entry_errors", control.datapath.static_errors)
    up = sum(1 for peer in control.peers.values() if peer.connection is not None)
    yield Sample("control_peers_up", up, kind=GAUGE)


def _local_api_samples(factory: Any) -> Iterator[Sample]:
    for name, value in factory.counters.items():
        yield Sample(
            "local_api_events",
            value,
            labels={"event": name},
            documentation="Limits of the roamctl socket that acted, by limit",
        )
    yield Sample("local_api_connections", len(factory.connections), kind=GAUGE)


def make_views(service: Any) -> dict[str, View]:
    """
    Bind every view to C{service} for the local API.
    """
    return {
        "status": lambda: status_table(service),
        "fdb": lambda: fdb_table(service),
        "l3": lambda: l3_table(service),
        "tunnels": lambda: tunnels_table(service),
        "peers": lambda: peers_table(service),
        "clients": lambda: clients_table(service),
        "counters": lambda: counters_table(service),
    }
