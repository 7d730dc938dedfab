# -*- test-case-name: tests.daemons.test_gre -*-
"""
A GRE aggregation port driven by the sans-IO tunnel engine.

L{roaming.ports.gre} frames packets with its own minimal tunnel table: key
and sequence number always, no fragmentation, no keepalives. The daemons
need what L{roaming.tunnel.GreEndpoint} does on top of that: the MTU of
the path (outer fragments, or an ICMP "fragmentation needed" reply to the
sender of a DF packet), optional sequence numbers, and keepalives that
report a tunnel up or down. L{EngineGrePort} is the adapter: the same
reactor-integrated socket as the ports of L{roaming.ports}, with the
engine doing the framing.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

from roaming.ports.gre import DEFAULT_RECEIVE_BUFFER
from roaming.ports.socketport import SocketPort
from roaming.tunnel import GreEndpoint, Outgoing, Transport

__all__ = ["EngineGrePort"]

_MAX_PACKET = 65535
_INT = struct.Struct("@i")
# Linux asm-generic/socket.h; Python 3.11's socket module does not export it.
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
# Linux linux/in.h; also missing from Python 3.11's socket module.
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DONT = getattr(socket, "IP_PMTUDISC_DONT", 0)


class EngineGrePort(SocketPort):
    """
    GRE over a raw IPv4 protocol 47 socket, or GRE-in-UDP (RFC 8086), with
    L{GreEndpoint} framing every packet.

    The raw socket is not connected and is read with C{recvfrom}: the
    kernel has already reassembled outer fragments, and the engine drops
    packets from unknown remotes and keys. Keepalives run on a timer at the
    engine's next deadline; tunnel up and down events go to
    C{on_link_event}.

    @ivar engine: the L{GreEndpoint}; its tunnels are this port's members.
    """

    aggregation = True

    def __init__(
        self,
        local: str,
        engine: GreEndpoint,
        *,
        udp_port: int,
        on_link_event: Callable[[Any], None] = lambda event: None,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        reactor: Any = None,
        system: Any = None,
    ) -> None:
        super().__init__(reactor=reactor, system=system)
        self.local = local
        self.engine = engine
        self.udp_port = udp_port
        self.receive_buffer = receive_buffer
        self._raw = engine.transport is Transport.RAW_IPV4
        self._on_link_event = on_link_event
        self._timer: Any = None
        self.kind = "gre-ip" if self._raw else "gre-udp"

    @property
    def name(self) -> str:
        """
        Transport and local address, for logs.
        """
        return f"{self.kind}:{self.local}"

    def member_ids(self) -> list[int]:
        """
        Return the aggregation IDs of the engine's tunnels.
        """
        return [tunnel.agg_id for tunnel in self.engine.tunnels()]

    # Socket

    def _open_socket(self) -> Any:
        system = self._system
        if self._raw:
            sock = system.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
        else:
            sock = system.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setblocking(False)
            if self._raw:
                # The engine builds the outer header, fragments included.
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            else:
                # Let the kernel fragment outer UDP packets larger than the
                # path MTU, which the engine leaves to it.
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.receive_buffer)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.bind((self.local, 0 if self._raw else self.udp_port))
        except OSError:
            sock.close()
            raise
        return sock

    def start_port(self, sink: Any) -> None:
        """
        Open the socket, start reading, and arm the keepalive timer.
        """
        super().start_port(sink)
        self.arm()

    def stop_port(self) -> None:
        """
        Cancel the keepalive timer and close the socket.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        super().stop_port()

    # Receive and send

    def _receive_one(self) -> tuple[int, bytes] | None:
        packet, (remote, _) = self._socket.recvfrom(_MAX_PACKET)
        received = self.engine.decapsulate(remote, packet, self.reactor.seconds())
        if self.engine.has_output:
            self._flush()
        if received is None:
            self.counters.rx_dropped += 1
        return received

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None:
        """
        Encapsulate C{frame} for the tunnel C{agg_id} and send its packets.
        """
        outgoing = self.engine.encapsulate(agg_id, frame, self.reactor.seconds())
        if outgoing is None:
            # The engine counted why (unknown tunnel, too big, ...).
            self.counters.tx_dropped += 1
        else:
            self._send(outgoing)
        if self.engine.has_output:
            self._flush()

    def _send(self, outgoing: Outgoing) -> None:
        sock = self._socket
        if sock is None:
            return
        for packet in outgoing.packets:
            try:
                if self._raw:
                    sent = sock.sendto(packet, (outgoing.address, 0))
                else:
                    tos = [(socket.IPPROTO_IP, socket.IP_TOS, _INT.pack(outgoing.tos))]
                    sent = sock.sendmsg([packet], tos, 0, (outgoing.address, self.udp_port))
            except OSError as error:
                self._count_send_error(error)
                continue
            self.counters.tx_frames += 1
            self.counters.tx_bytes += sent

    def _flush(self) -> None:
        """
        Send the engine's queued keepalives, hand its ICMP replies to the
        bridge, and report its tunnel events.
        """
        for outgoing in self.engine.drain_packets():
            self._send(outgoing)
        sink = self._sink
        for agg_id, frame in self.engine.drain_frames():
            if sink is not None:
                sink(agg_id, frame)
        for event in self.engine.drain_events():
            self._on_link_event(event)

    # Keepalive timer

    def arm(self) -> None:
        """
        Schedule the engine's next deadline; call it after adding a tunnel.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        deadline = self.engine.next_deadline()
        if deadline is None or self._socket is None:
            return
        delay = max(0.0, deadline - self.reactor.seconds())
        self._timer = self.reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.engine.poll(self.reactor.seconds())
        self._flush()
        self.arm()
