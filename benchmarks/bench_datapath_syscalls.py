"""
Kernel cost per packet of the system calls on the GRE hop's path, without
the forwarder.  One process calls each in a loop and the figure is its CPU
time per call.  The two network namespaces are joined by a veth pair, as in
the GRE hop of bench_datapath.py.

Run as root from the repository root::

    python benchmarks/bench_datapath_syscalls.py

Rows:

  - raw GRE sendto, receiver not reading: C{sendto} of one 96-byte IPv4
    GRE packet (key, sequence number, 64-byte frame) on a raw socket with
    C{IP_HDRINCL}, as L{roaming.ports.gre.RawGrePort} sends it.  The veth
    pair runs the receiving namespace's IPv4 input in the sender's system
    call, so the figure includes it; the receiver's full buffer drops the
    packet at the end.
  - raw GRE sendto + recvfrom: the same, and the receiving raw socket read
    in the same loop, so the packet is queued and then read.
  - UDP sendto, receiver not reading: the same bytes as a UDP datagram,
    for comparison with a transport the kernel builds headers for.
  - getppid: the cost of entering the kernel at all.

Each row is the median of five runs of 100000 calls.
"""

import os
import socket
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.ports import netns

CALLS = 100_000
RUNS = 5
SENDER = "192.0.2.1"
RECEIVER = "192.0.2.2"
UDP_PORT = 9
# asm-generic/socket.h; not in the socket module of Python 3.11.
_SO_RCVBUFFORCE = 33
_OUTER = struct.Struct("!BBHHHBBH4s4s")
_GRE = struct.Struct("!HHII")


def _gre_packet() -> bytes:
    frame = bytes(64)
    gre = _GRE.pack(0x3000, 0x6558, 0x10, 0)
    header = _OUTER.pack(
        0x45,
        0,
        _OUTER.size + len(gre) + len(frame),
        1,
        0,
        64,
        socket.IPPROTO_GRE,
        0,
        socket.inet_aton(SENDER),
        socket.inet_aton(RECEIVER),
    )
    return header + gre + frame


def _per_call(loop) -> float:
    results = []
    for _ in range(RUNS):
        start = time.process_time()
        loop()
        results.append((time.process_time() - start) / CALLS * 1e6)
    return statistics.median(results)


def _drain(sock: socket.socket) -> None:
    for _ in range(1_000_000):
        try:
            sock.recv(65535, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return


def measure() -> dict[str, float]:
    """
    Return the microseconds per call of each row, measured in two new
    namespaces that are removed on return.
    """
    with netns.namespaces("s", "r") as (sender, receiver):
        sender.ip("link", "add", "ws", "type", "veth", "peer", "name", "wr", "netns", receiver.name)
        for namespace, device, address in ((sender, "ws", SENDER), (receiver, "wr", RECEIVER)):
            namespace.ip("addr", "add", f"{address}/24", "dev", device)
            namespace.ip("link", "set", device, "up")
        with netns.inside(receiver):
            raw_in = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
            udp_in = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with netns.inside(sender):
            raw_out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
            udp_out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sockets = (raw_in, udp_in, raw_out, udp_out)
        try:
            raw_in.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 4 * 1024 * 1024)
            raw_in.bind((RECEIVER, 0))
            raw_in.setblocking(False)
            udp_in.bind((RECEIVER, UDP_PORT))
            raw_out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
            raw_out.bind((SENDER, 0))
            packet = _gre_packet()
            gre_only = packet[_OUTER.size :]
            raw_address = (RECEIVER, 0)
            udp_address = (RECEIVER, UDP_PORT)

            # The first packet resolves the receiver's MAC address.
            raw_out.sendto(packet, raw_address)
            time.sleep(0.2)
            _drain(raw_in)

            def raw_unread() -> None:
                send = raw_out.sendto
                for _ in range(CALLS):
                    send(packet, raw_address)
                _drain(raw_in)

            def raw_read() -> None:
                send = raw_out.sendto
                receive = raw_in.recvfrom
                for _ in range(CALLS):
                    send(packet, raw_address)
                    receive(65535)

            def udp_unread() -> None:
                send = udp_out.sendto
                for _ in range(CALLS):
                    send(gre_only, udp_address)
                _drain(udp_in)

            def kernel_entry() -> None:
                call = os.getppid
                for _ in range(CALLS):
                    call()

            return {
                "raw GRE sendto, receiver not reading": _per_call(raw_unread),
                "raw GRE sendto + recvfrom": _per_call(raw_read),
                "UDP sendto, receiver not reading": _per_call(udp_unread),
                "getppid": _per_call(kernel_entry),
            }
        finally:
            for sock in sockets:
                sock.close()


def main() -> int:
    if not netns.CAN_USE_NETNS:
        print("Cannot run: needs root, /dev/net/tun and iproute2 (ip)", file=sys.stderr)
        return 1
    load = os.getloadavg()[0]
    print("| system call | us/call |")
    print("|---|---|")
    for name, cost in measure().items():
        print(f"| {name} | {cost:.2f} |", flush=True)
    print(f"load average before: {load:.1f}, after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
