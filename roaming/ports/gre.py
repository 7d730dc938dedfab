# -*- test-case-name: tests.ports.test_gre -*-
"""
GRE ports: aggregation ports of the bridge whose members are GRE tunnels.

Two transports carry the same GRE packets (see L{roaming.ports.tunnels}):

  - L{RawGrePort}: IPv4 protocol 47 on a raw socket, what a deployment uses.
  - L{UdpGrePort}: GRE-in-UDP on port 4754 (RFC 8086), for paths through NAT
    or for hosts where the forwarder may not open raw sockets.

An aggregation ID names one tunnel of the port's tunnel table.
"""

import socket
import struct

from twisted.logger import Logger

from roaming.ports.socketport import SocketPort
from roaming.ports.tunnels import GreEndpoint

__all__ = ["GRE_IN_UDP_PORT", "RawGrePort", "UdpGrePort"]

GRE_IN_UDP_PORT = 4754
"""UDP destination port of GRE-in-UDP (RFC 8086 section 3)."""

DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
"""Socket receive buffer in bytes: room for bursts of about 2800 full frames."""

_MAX_PACKET = 65535
# asm-generic/socket.h; the socket module of Python 3.11 does not export it.
_SO_RCVBUFFORCE = 33
_INT = struct.Struct("@i")

_log = Logger()


class _GrePort(SocketPort):
    """
    Shared part of both transports: the tunnel endpoint, members and sends.
    """

    aggregation = True

    def __init__(
        self,
        local: str,
        endpoint: GreEndpoint,
        *,
        receive_buffer: int = DEFAULT_RECEIVE_BUFFER,
        budget: int = 64,
        reactor=None,
        system=None,
    ) -> None:
        """
        @param local: local IPv4 address to bind.
        @param endpoint: the tunnel table or tunnel engine that frames and
            unframes GRE packets and maps aggregation IDs to tunnels.
        @param receive_buffer: requested C{SO_RCVBUF} in bytes; the kernel
            caps it at C{net.core.rmem_max} unless the process has
            C{CAP_NET_ADMIN}, which C{SO_RCVBUFFORCE} is tried with first.
        """
        super().__init__(budget=budget, reactor=reactor, system=system)
        self.local = local
        self.endpoint = endpoint
        self.receive_buffer = receive_buffer

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.local}"

    def member_ids(self) -> list[int]:
        """
        Return the aggregation IDs of the tunnels of this port.
        """
        return [tunnel.agg_id for tunnel in self.endpoint.tunnels()]

    def _set_receive_buffer(self, sock) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self.receive_buffer)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)

    def _receive_gre(self, remote: str, gre_packet: bytes):
        received = self.endpoint.decapsulate(remote, gre_packet)
        if received is None:
            self.counters.rx_dropped += 1
        return received

    def send_frame(self, frame: bytes, agg_id: int | None = None) -> None:
        """
        Send C{frame} into the tunnel C{agg_id}.
        """
        try:
            remote, tos, gre_packet = self.endpoint.encapsulate(agg_id, frame)
        except KeyError:
            self.counters.tx_errors += 1
            self._errors.error(
                "no-tunnel",
                "No tunnel with aggregation ID {agg_id} on {name}; frame dropped",
                agg_id=agg_id,
                name=self.name,
            )
            return
        try:
            sent = self._send_gre(remote, tos, gre_packet)
        except OSError as e:
            self._count_send_error(e)
            return
        self.counters.tx_frames += 1
        self.counters.tx_bytes += sent

    def _send_gre(self, remote: str, tos: int, gre_packet: bytes) -> int:
        raise NotImplementedError


class RawGrePort(_GrePort):
    """
    GRE over IPv4 protocol 47 on one raw socket.

    The socket is not connected: a connected raw socket reports ICMP errors
    from its peer as socket errors, and under load a peer with a full
    receive buffer sends protocol-unreachable.  So the port sends with
    C{sendto}, filters peers in user space (the tunnel table drops packets
    from unknown addresses and keys), and counts read errors without
    stopping.  Outer headers are built in user space (C{IP_HDRINCL}) so the
    TOS byte can differ per packet.
    """

    kind = "gre-ip"

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
        packet, _ = self._socket.recvfrom(_MAX_PACKET)
        remote, gre_packet = self.endpoint.parse_ipv4(packet)
        return self._receive_gre(remote, gre_packet)

    def _send_gre(self, remote: str, tos: int, gre_packet: bytes) -> int:
        packet = self.endpoint.build_ipv4(remote, tos, gre_packet)
        return self._socket.sendto(packet, (remote, 0))


class UdpGrePort(_GrePort):
    """
    GRE-in-UDP (RFC 8086) on one UDP socket bound to C{local} and C{port}.

    The outer TOS is set per packet with an C{IP_TOS} control message.

    NOTE: every packet leaves from the bound port, so the UDP source port
    carries no flow entropy (RFC 8086 section 3.2.1 recommends a flow hash).
    ECMP paths therefore see one flow per pair of tunnel endpoints.
    """

    kind = "gre-udp"

    def __init__(self, local: str, endpoint: GreEndpoint, *, port: int = GRE_IN_UDP_PORT, **kw):
        super().__init__(local, endpoint, **kw)
        self.port = port

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.local}:{self.port}"

    def _open_socket(self):
        sock = self._system.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setblocking(False)
            self._set_receive_buffer(sock)
            sock.bind((self.local, self.port))
        except OSError:
            sock.close()
            raise
        return sock

    def _receive_one(self):
        gre_packet, (remote, _) = self._socket.recvfrom(_MAX_PACKET)
        return self._receive_gre(remote, gre_packet)

    def _send_gre(self, remote: str, tos: int, gre_packet: bytes) -> int:
        tos_message = [(socket.IPPROTO_IP, socket.IP_TOS, _INT.pack(tos))]
        return self._socket.sendmsg([gre_packet], tos_message, 0, (remote, self.port))
