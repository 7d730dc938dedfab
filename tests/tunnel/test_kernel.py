# -*- test-case-name: tests.tunnel.test_kernel -*-
"""
Tests that send the tunnel engine's packets through a real Linux IPv4 stack:
two network namespaces joined by a veth pair, raw and UDP sockets opened by
small helper processes inside them. They check that the kernel accepts the
hand-built outer headers, reassembles the engine's fragments, and delivers
the TOS and the UDP source port that the engine chose.

They need root and iproute2, and skip cleanly without them.
"""

import ipaddress
import itertools
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from roaming.tunnel import GreEndpoint, LinkState, Transport, TunnelUp, pack_key

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
    ),
]

ADDRESS_A = "198.18.0.1"
ADDRESS_B = "198.18.0.2"
LINK_MTU = 1400
KEY = pack_key(7, access_controlled=False)
TIMEOUT = 10.0

# Receives C{count} packets (or stops after five seconds) and prints one
# line per packet: the source address, the TOS (UDP only), the source port
# (UDP only) and the payload in hex.
RECEIVER = textwrap.dedent(
    """
    import select, socket, struct, sys, time
    mode, count = sys.argv[1], int(sys.argv[2])
    if mode == "raw":
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        sock.bind(("0.0.0.0", 4754))
    print("ready", flush=True)
    deadline = time.monotonic() + 5.0
    for _ in range(count):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
            break
        if mode == "raw":
            data, address = sock.recvfrom(65535)
            print(address[0], 0, 0, data.hex(), flush=True)
        else:
            data, ancillary, _, address = sock.recvmsg(65535, 64)
            tos = [item[2][0] for item in ancillary if item[1] == socket.IP_TOS]
            print(address[0], tos[0] if tos else -1, address[1], data.hex(), flush=True)
    """
)

# Reads lines "destination source_port tos hex" from standard input and
# sends each: over a raw socket with IP_HDRINCL (the line contains the
# whole IPv4 packet), or over UDP to port 4754 from the given source port.
SENDER = textwrap.dedent(
    """
    import socket, sys
    mode = sys.argv[1]
    sockets = {}
    for line in sys.stdin:
        destination, source_port, tos, data = line.split()
        packet = bytes.fromhex(data)
        if mode == "raw":
            sock = sockets.setdefault(
                0, socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            )
            sock.sendto(packet, (destination, 0))
            continue
        sock = sockets.get(source_port)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            # IP_MTU_DISCOVER (10) = IP_PMTUDISC_DONT (0), from linux/in.h;
            # Python 3.11 does not export the names.
            sock.setsockopt(socket.IPPROTO_IP, 10, 0)
            sock.bind(("0.0.0.0", int(source_port)))
            sockets[source_port] = sock
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, int(tos))
        sock.sendto(packet, (destination, 4754))
    """
)


# A serial number per namespace set, so a set left behind by a failed removal
# cannot make the next test fail with "File exists".
_serial = itertools.count(1)


def run(*command: str) -> None:
    """
    Run a command, raising with its error output when it fails.
    """
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


@pytest.fixture
def namespaces():
    """
    Create namespaces A and B joined by a veth pair with MTU 1400, and
    remove them afterwards.
    """
    prefix = f"rmtst-tunnel-{os.getpid()}-{next(_serial)}"
    names = (f"{prefix}-a", f"{prefix}-b")
    created = []
    try:
        for name in names:
            run("ip", "netns", "add", name)
            created.append(name)
            run("ip", "-n", name, "link", "set", "lo", "up")
        link_a = f"rmt{os.getpid() % 100000}a"
        link_b = f"rmt{os.getpid() % 100000}b"
        run(
            "ip", "-n", names[0], "link", "add", link_a, "mtu", str(LINK_MTU),
            "type", "veth", "peer", "name", link_b, "netns", names[1],
        )  # fmt: skip
        run("ip", "-n", names[1], "link", "set", link_b, "mtu", str(LINK_MTU))
        for name, link, address in ((names[0], link_a, ADDRESS_A), (names[1], link_b, ADDRESS_B)):
            run("ip", "-n", name, "addr", "add", f"{address}/24", "dev", link)
            run("ip", "-n", name, "link", "set", link, "up")
        yield names
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=TIMEOUT)


def transfer(sender_ns, receiver_ns, mode, lines, expected):
    """
    Send C{lines} from one namespace and return what the other received:
    tuples of source address, TOS, source port and payload.
    """
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", receiver_ns, sys.executable, "-c", RECEIVER, mode, str(expected)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout.readline().strip() == "ready"
        sender = subprocess.run(
            ["ip", "netns", "exec", sender_ns, sys.executable, "-c", SENDER, mode],
            input="".join(f"{line}\n" for line in lines),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert sender.returncode == 0, sender.stderr
        output, errors = receiver.communicate(timeout=TIMEOUT)
        assert receiver.returncode == 0, errors
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait(timeout=TIMEOUT)
    received = []
    for line in output.splitlines():
        source, tos, port, data = line.split()
        received.append((source, int(tos), int(port), bytes.fromhex(data)))
    return received


def raw_lines(outgoing):
    """
    Return the sender lines for the packets of one L{Outgoing}.
    """
    return [f"{outgoing.address} 0 0 {packet.hex()}" for packet in outgoing.packets]


def ethernet_frame(size: int, tos: int) -> bytes:
    """
    Build an Ethernet frame of C{size} bytes carrying an IPv4 header without
    DF and a payload with no long runs of zeros.
    """
    ip = bytes([0x45, tos]) + (size - 14).to_bytes(2, "big") + bytes(16)
    frame = bytes.fromhex("0200000000fe0200000000010800") + ip + bytes(range(256)) * 12
    return frame[:size]


FRAMES = [ethernet_frame(64, 0x00), ethernet_frame(1300, 0xB8), ethernet_frame(3000, 0x28)]


def test_raw_packets_cross_kernel(namespaces):
    """
    Raw packets, including a frame the engine split into three fragments,
    arrive whole at a raw socket and decapsulate to the original frames.
    """
    sender = GreEndpoint(ADDRESS_A)
    sender.add_tunnel(1, ADDRESS_B, KEY, checksum=True, sequence=True, path_mtu=LINK_MTU)
    receiver = GreEndpoint(ADDRESS_B, max_frame_size=9018)
    receiver.add_tunnel(2, ADDRESS_A, KEY, checksum=True, sequence=True, path_mtu=LINK_MTU)
    frames = FRAMES
    lines = []
    for frame in frames:
        lines += raw_lines(sender.encapsulate(1, frame, 0.0))
    assert len(lines) == 5

    received = transfer(*namespaces, "raw", lines, expected=3)

    assert [source for source, _, _, _ in received] == [ADDRESS_A] * 3
    results = [receiver.decapsulate(source, data, 0.0) for source, _, _, data in received]
    assert results == [(2, frame) for frame in frames]
    assert sender.counters["outer-fragmented"] == 1


def test_keepalive_reflected_by_kernel_path(namespaces):
    """
    A keepalive sent from A is reflected by B's endpoint, the reflected
    packet (an IPv4 packet from B to A) crosses the kernel, and A's tunnel
    comes up.
    """
    endpoint_a = GreEndpoint(ADDRESS_A)
    endpoint_a.add_tunnel(1, ADDRESS_B, KEY, keepalive_period=1.0, path_mtu=LINK_MTU)
    endpoint_b = GreEndpoint(ADDRESS_B)
    endpoint_b.add_tunnel(2, ADDRESS_A, KEY, path_mtu=LINK_MTU)

    endpoint_a.poll(0.0)
    [request] = endpoint_a.drain_packets()
    [(source, _, _, data)] = transfer(*namespaces, "raw", raw_lines(request), expected=1)
    assert endpoint_b.decapsulate(source, data, 0.0) is None
    [reflection] = endpoint_b.drain_packets()
    [(source, _, _, data)] = transfer(
        namespaces[1], namespaces[0], "raw", raw_lines(reflection), expected=1
    )

    assert endpoint_a.decapsulate(source, data, 0.5) is None
    assert endpoint_a.drain_events() == [TunnelUp(1, 0.5)]
    assert endpoint_a.tunnel(1).link_state is LinkState.UP


def test_udp_packets_cross_kernel(namespaces):
    """
    GRE-in-UDP payloads arrive with the TOS and source port the engine
    chose, and a frame larger than the path is fragmented by the kernel and
    arrives whole.
    """
    sender = GreEndpoint(ADDRESS_A, transport=Transport.GRE_IN_UDP)
    sender.add_tunnel(1, ADDRESS_B, KEY, sequence=True, path_mtu=LINK_MTU)
    receiver = GreEndpoint(ADDRESS_B, transport=Transport.GRE_IN_UDP, max_frame_size=9018)
    receiver.add_tunnel(2, ADDRESS_A, KEY, sequence=True, path_mtu=LINK_MTU)
    frames = FRAMES
    sent = [sender.encapsulate(1, frame, 0.0) for frame in frames]
    lines = [
        f"{outgoing.address} {outgoing.source_port} {outgoing.tos} {outgoing.packets[0].hex()}"
        for outgoing in sent
    ]

    received = transfer(*namespaces, "udp", lines, expected=3)

    assert [(tos, port) for _, tos, port, _ in received] == [
        (outgoing.tos, outgoing.source_port) for outgoing in sent
    ]
    assert [tos for _, tos, _, _ in received] == [0x00, 0xB8, 0x28]
    results = [receiver.decapsulate(source, data, 0.0) for source, _, _, data in received]
    assert results == [(2, frame) for frame in frames]
    assert ipaddress.IPv4Address(received[0][0]) == ipaddress.IPv4Address(ADDRESS_A)


def test_udp_keepalive_round_trip(namespaces):
    """
    Over GRE-in-UDP a keepalive and its reflected reply cross the kernel in
    both directions and bring A's tunnel up.
    """
    endpoint_a = GreEndpoint(ADDRESS_A, transport=Transport.GRE_IN_UDP)
    endpoint_a.add_tunnel(1, ADDRESS_B, KEY, keepalive_period=1.0, path_mtu=LINK_MTU)
    endpoint_b = GreEndpoint(ADDRESS_B, transport=Transport.GRE_IN_UDP)
    endpoint_b.add_tunnel(2, ADDRESS_A, KEY, path_mtu=LINK_MTU)

    endpoint_a.poll(0.0)
    [request] = endpoint_a.drain_packets()
    line = f"{request.address} {request.source_port} {request.tos} {request.packets[0].hex()}"
    [(source, tos, _, data)] = transfer(*namespaces, "udp", [line], expected=1)
    assert tos == 0xC0
    assert endpoint_b.decapsulate(source, data, 0.0) is None
    [reflection] = endpoint_b.drain_packets()
    line = (
        f"{reflection.address} {reflection.source_port} {reflection.tos} "
        f"{reflection.packets[0].hex()}"
    )
    [(source, _, _, data)] = transfer(namespaces[1], namespaces[0], "udp", [line], expected=1)

    assert endpoint_a.decapsulate(source, data, 0.5) is None
    assert endpoint_a.drain_events() == [TunnelUp(1, 0.5)]
