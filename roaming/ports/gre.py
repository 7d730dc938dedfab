# -*- test-case-name: tests.ports.test_gre -*-
"""
GRE ports: aggregation ports of the bridge whose members are GRE tunnels.

Two transports carry the GRE packets:

  - L{RawGrePort}: IPv4 protocol 47 on a raw socket, what a deployment uses.
  - L{UdpGrePort}: GRE-in-UDP on port 4754 (RFC 8086), for paths through NAT
    or for hosts where the forwarder may not open raw sockets.

An aggregation ID names one tunnel of the port's endpoint, which is either
the tunnel engine (L{roaming.tunnel.endpoint.GreEndpoint}: MTU handling,
fragmentation, keepalives, ECN) or the port layer's small static table
(L{roaming.ports.tunnels.GreTunnelTable}).
"""

import socket
import struct
from collections.abc import Callable

from twisted.logger import Logger

from roaming.ports.socketport import SocketPort
from roaming.ports.tunnels import TunnelTable
from roaming.tunnel.endpoint import GreEndpoint as TunnelEngine
from roaming.tunnel.endpoint import Transport

__all__ = ["GRE_IN_UDP_PORT", "IDLE_POLL_INTERVAL", "RawGrePort", "UdpGrePort"]

GRE_IN_UDP_PORT = 4754
"""UDP destination port of GRE-in-UDP (RFC 8086 section 3)."""

DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
"""Socket receive buffer in bytes, to absorb bursts while the reactor serves
other ports."""

IDLE_POLL_INTERVAL = 1.0
"""Maximum seconds between keepalive polls of a tunnel engine.  A tunnel
added with keepalives therefore sends its first one within this time."""

_MAX_PACKET = 65535
# asm-generic/socket.h; the socket module of Python 3.11 does not export it.
_SO_RCVBUFFORCE = 33
# linux/in.h; also missing from the socket module of Python 3.11.
_IP_MTU_DISCOVER = 10
_IP_PMTUDISC_DONT = 0
_INT = struct.Struct("@i")

_log = Logger()


class _GrePort(SocketPort):
    """
    Shared part of both transports: the endpoint, members, sends and the
    keepalive timer of a tunnel engine.

    @ivar on_tunnel_event: called with each L{TunnelUp} or L{TunnelDown} of
        a tunnel engine instead of logging it; when L{None}, the port logs
        each event.
    @ivar ignore_remote: called with the outer source address of each
        received packet; a packet for which it returns true is dropped
        before it reaches the endpoint and counted in L{ignored}. L{None}
        passes every packet on.
    @ivar ignored: packets dropped by L{ignore_remote}.
    """

    aggregation = True
    transport: Transport

    def __init__(
        self,
        local: str,
        endpoint: TunnelTable | TunnelEngine,
        *,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        budget: int = 64,
        on_tunnel_event: Callable[[object], None] | None = None,
        ignore_remote: Callable[[str], bool] | None = None,
        reactor=None,
        system=None,
    ) -> None:
        """
        @param local: local IPv4 address to bind.
        @param endpoint: the tunnel engine, whose transport must match the
            port's, or any other object with the methods of L{TunnelTable},
            such as L{roaming.ports.tunnels.GreTunnelTable}.
        @param receive_buffer: requested C{SO_RCVBUF} in bytes; the kernel
            caps it at C{net.core.rmem_max} unless the process has
            C{CAP_NET_ADMIN}, which C{SO_RCVBUFFORCE} is tried with first.
        @param on_tunnel_event: the initial L{on_tunnel_event}.
        @param ignore_remote: the initial L{ignore_remote}. Two raw GRE
            sockets bound to one address both receive every GRE packet, so
            each port of such a pair ignores the remotes of the other.
        @raise ValueError: the engine's transport is not the port's.
        """
        super().__init__(budget=budget, reactor=reactor, system=system)
        self.local = local
        self.endpoint = endpoint
        self.receive_buffer = receive_buffer
        self.on_tunnel_event = on_tunnel_event
        self.ignore_remote = ignore_remote
        self.ignored = 0
        self._engine: TunnelEngine | None = None
        self._poll_call = None
        if isinstance(endpoint, TunnelEngine):
            if endpoint.transport is not self.transport:
                raise ValueError(
                    f"{type(self).__name__} needs a tunnel engine with transport "
                    f"{self.transport.value}, got {endpoint.transport.value}"
                )
            self._engine = endpoint

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.local}"

    def member_ids(self) -> list[int]:
        """
        Return the aggregation IDs of the tunnels of this port.
        """
        return [tunnel.agg_id for tunnel in self.endpoint.tunnels()]

    def start_port(self, sink) -> None:
        super().start_port(sink)
        if self._engine is not None:
            self._poll()

    def stop_port(self) -> None:
        self._cancel_poll()
        super().stop_port()

    def _cancel_poll(self) -> None:
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        self._poll_call = None

    def _set_receive_buffer(self, sock) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self.receive_buffer)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)

    # Receiving

    def _receive_packet(self, remote: str, packet: bytes):
        """
        Decapsulate one packet as the socket returned it: the whole IPv4
        packet from a raw socket, the UDP payload from a UDP socket.
        """
        ignore_remote = self.ignore_remote
        if ignore_remote is not None and ignore_remote(remote):
            self.ignored += 1
            return None
        engine = self._engine
        if engine is not None:
            # The engine counts every packet it does not return, by reason.
            return engine.decapsulate(remote, packet, self.reactor.seconds())
        if self.transport is Transport.RAW_IPV4:
            remote, packet = self.endpoint.parse_ipv4(packet)
        received = self.endpoint.decapsulate(remote, packet)
        if received is None:
            self.counters.rx_dropped += 1
        return received

    def doRead(self) -> None:
        super().doRead()
        if self._engine is not None and self._engine.has_output:
            self._drain_engine()

    # Sending

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None:
        """
        Send C{frame} into the tunnel C{agg_id}.
        """
        if self._socket is None:
            # Stopped: the bridge may still hold the port for this frame.
            self.counters.tx_dropped += 1
            return
        engine = self._engine
        if engine is not None:
            outgoing = engine.encapsulate(agg_id, frame, self.reactor.seconds())
            if outgoing is None:
                # Unknown tunnel, runt, or too big: the engine counted why
                # and may have queued an ICMP reply for the sender.
                self.counters.tx_dropped += 1
                if engine.has_output:
                    self._drain_engine()
                return
            # An encapsulated frame queues nothing on the engine, so only the
            # dropped path above looks for engine output.
            address, packets, tos, _ = outgoing
        else:
            try:
                address, tos, gre_packet = self.endpoint.encapsulate(agg_id, frame)
            except KeyError:
                self.counters.tx_errors += 1
                self._errors.error(
                    "no-tunnel",
                    "No tunnel with aggregation ID {agg_id} on {name}; frame dropped",
                    agg_id=agg_id,
                    name=self.name,
                )
                return
            if self.transport is Transport.RAW_IPV4:
                packets = (self.endpoint.build_ipv4(address, tos, gre_packet),)
            else:
                packets = (gre_packet,)

        try:
            if len(packets) == 1:
                sent = self._send_packet(address, tos, packets[0])
            else:
                sent = 0
                for packet in packets:
                    sent += self._send_packet(address, tos, packet)
        except OSError as e:
            self._count_send_error(e)
            return
        self.counters.tx_frames += 1
        self.counters.tx_bytes += sent

    def _send_packet(self, address: str, tos: int, packet: bytes) -> int:
        raise NotImplementedError

    # Tunnel engine output and keepalives

    def _drain_engine(self) -> None:
        """
        Send the engine's keepalives, hand its ICMP replies to the bridge,
        and report its tunnel events.
        """
        engine = self._engine
        for outgoing in engine.drain_packets():
            if self._socket is None:
                break
            for packet in outgoing.packets:
                try:
                    self._send_packet(outgoing.address, outgoing.tos, packet)
                except OSError as e:
                    self._count_send_error(e)
        sink = self._sink
        for agg_id, frame in engine.drain_frames():
            if sink is not None:
                sink(agg_id, frame)
        for event in engine.drain_events():
            if self.on_tunnel_event is None:
                _log.info("Tunnel event on {name}: {event}", name=self.name, event=event)
            else:
                self.on_tunnel_event(event)

    def arm(self) -> None:
        """
        Poll the tunnel engine at its next deadline. Call it after adding a
        tunnel or changing its keepalives, so that its first keepalive does
        not wait for the idle poll.
        """
        if self._engine is None or self._socket is None:
            return
        self._cancel_poll()
        self._schedule_poll(self.reactor.seconds())

    def _poll(self) -> None:
        self._poll_call = None
        engine = self._engine
        now = self.reactor.seconds()
        engine.poll(now)
        if engine.has_output:
            self._drain_engine()
        self._schedule_poll(now)

    def _schedule_poll(self, now: float) -> None:
        deadline = self._engine.next_deadline()
        delay = IDLE_POLL_INTERVAL
        if deadline is not None:
            delay = min(max(deadline - now, 0.0), IDLE_POLL_INTERVAL)
        self._poll_call = self.reactor.callLater(delay, self._poll)


class RawGrePort(_GrePort):
    """
    GRE over IPv4 protocol 47 on one raw socket.

    The socket is not connected: a connected raw socket reports ICMP errors
    from its peer as socket errors, and under load a peer with a full
    receive buffer sends protocol-unreachable.  So the port sends with
    C{sendto}, filters peers in user space (the endpoint drops packets
    from unknown addresses and keys), and counts read errors without
    stopping.  Outer headers are built in user space (C{IP_HDRINCL}) so the
    TOS byte can differ per packet.
    """

    kind = "gre-ip"
    transport = Transport.RAW_IPV4

    def _open_socket(self):
        sock = self._system.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            self._set_receive_buffer(sock)
            sock.bind((self.local, 0))
        except OSError:
            sock.close()
            raise
        return sock

    def _receive_one(self):
        packet, (remote, _) = self._socket.recvfrom(_MAX_PACKET)
        return self._receive_packet(remote, packet)

    def _send_packet(self, address: str, tos: int, packet: bytes) -> int:
        return self._socket.sendto(packet, (address, 0))


class UdpGrePort(_GrePort):
    """
    GRE-in-UDP (RFC 8086) on one UDP socket bound to C{local} and C{port}.

    The outer TOS is set per packet with an C{IP_TOS} control message. The
    socket has path MTU discovery off (C{IP_PMTUDISC_DONT}), so the kernel
    fragments an outer datagram larger than the path MTU instead of failing
    the send with C{EMSGSIZE}: neither endpoint fragments GRE-in-UDP itself.

    NOTE: every packet leaves from the bound port, so the UDP source port
    carries no flow entropy (RFC 8086 section 3.2.1 recommends a flow hash),
    and the engine's per-flow source port is not used.  ECMP paths
    therefore see one flow per pair of tunnel endpoints.  Sending from the
    port that peers send to keeps one NAT mapping for both directions.
    """

    kind = "gre-udp"
    transport = Transport.GRE_IN_UDP

    def __init__(self, local: str, endpoint, *, port: int = GRE_IN_UDP_PORT, **kw):
        super().__init__(local, endpoint, **kw)
        self.port = port

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.local}:{self.port}"

    def _open_socket(self):
        sock = self._system.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DONT)
            self._set_receive_buffer(sock)
            sock.bind((self.local, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _receive_one(self):
        packet, (remote, _) = self._socket.recvfrom(_MAX_PACKET)
        return self._receive_packet(remote, packet)

    def _send_packet(self, address: str, tos: int, packet: bytes) -> int:
        tos_message = [(socket.IPPROTO_IP, socket.IP_TOS, _INT.pack(tos))]
        return self._socket.sendmsg([packet], tos_message, 0, (address, self.port))
