# -*- test-case-name: tests.tunnel -*-
"""
The sans-IO GRE tunnel engine: Ethernet frames in, outer packets out, and
back.

One L{GreEndpoint} serves one GRE aggregation port. Each aggregation ID
names one tunnel, a remote IPv4 address and a 32-bit GRE key (layout in
L{roaming.tunnel.key}: the VSC id and the access-controlled flag)::

    from roaming.tunnel import GreEndpoint, Transport, pack_key

    endpoint = GreEndpoint("192.0.2.1", transport=Transport.RAW_IPV4)
    endpoint.add_tunnel(7, "192.0.2.2", pack_key(vsc_id=12, access_controlled=True),
                        sequence=True, path_mtu=1500, keepalive_period=10.0)

    # The bridge sends a frame to aggregation ID 7:
    outgoing = endpoint.encapsulate(7, frame, now)
    if outgoing is not None:
        for packet in outgoing.packets:
            raw_socket.sendto(packet, (outgoing.address, 0))

    # A socket received a packet:
    result = endpoint.decapsulate(source_address, packet, now)
    if result is not None:
        agg_id, frame = result   # feed to Bridge.process(port, agg_id, frame, now)

    # After either call, and when the timer at endpoint.next_deadline() fires
    # (call endpoint.poll(now) first):
    endpoint.drain_packets()   # keepalives to send, as Outgoing
    endpoint.drain_frames()    # (agg_id, frame): ICMP replies for the bridge
    endpoint.drain_events()    # TunnelUp / TunnelDown

Nothing here reads the clock, opens a socket or logs. Drops are counted by
reason in C{GreEndpoint.counters}. docs/tunnels.md describes the key
layout, the MTU arithmetic, the default DSCP table and the keepalive format.
"""

from roaming.codec.gre import GRE_UDP_PORT
from roaming.tunnel.endpoint import (
    COUNTER_NAMES,
    DEFAULT_MAX_FRAME_SIZE,
    GreEndpoint,
    Outgoing,
    Transport,
    TunnelState,
)
from roaming.tunnel.framing import max_inner_frame, tunnel_overhead
from roaming.tunnel.key import MAX_VSC_ID, TunnelKey, pack_key, unpack_key
from roaming.tunnel.liveness import LinkState, TunnelDown, TunnelUp
from roaming.tunnel.qos import DEFAULT_PCP_TO_DSCP

__all__ = [
    "COUNTER_NAMES",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_PCP_TO_DSCP",
    "GRE_UDP_PORT",
    "MAX_VSC_ID",
    "GreEndpoint",
    "LinkState",
    "Outgoing",
    "Transport",
    "TunnelDown",
    "TunnelKey",
    "TunnelState",
    "TunnelUp",
    "max_inner_frame",
    "pack_key",
    "tunnel_overhead",
    "unpack_key",
]
