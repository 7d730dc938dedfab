"""
End-to-end tests: frames from real kernel network stacks cross
tap -> bridge -> GRE -> bridge -> tap between namespaces and arrive
unchanged; tshark decodes the tunnel packets on the wire.
"""

import json
import shutil
import socket
import subprocess
import time

import pytest

from roaming.ports.packet import ETH_P_ALL, PACKET_OUTGOING

from . import netns
from .topology import (
    HOST_A,
    HOST_B,
    TUNNEL_KEY,
    WAN_A,
    WAN_B,
    gre_hop,
    tap_to_tap,
    tap_to_uplink,
)

pytestmark = netns.requires_netns

_UDP_PORT = 6000
_PAYLOAD_SIZES = (1, 18, 100, 1000, 1472)
_TOS_VALUES = (0x00, 0xB8, 0x28, 0x48, 0x00)


@pytest.fixture(
    scope="module",
    params=[("ip", "engine"), ("udp", "engine"), ("ip", "table")],
    ids=["ip-engine", "udp-engine", "ip-table"],
)
def hop(request):
    transport, endpoint = request.param
    with gre_hop(transport=transport, endpoint=endpoint) as topology:
        yield topology


def _ping(topology, count: int = 3) -> str:
    return topology.a.exec("ping", "-c", str(count), "-i", "0.2", "-W", "2", HOST_B, timeout=20)


def _capture_socket(namespace, device: str) -> socket.socket:
    with netns.inside(namespace):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((device, ETH_P_ALL))
    sock.settimeout(0.5)
    return sock


def _udp_frames(sock: socket.socket, *, outgoing: bool, expected: int) -> list[bytes]:
    frames = []
    deadline = time.monotonic() + 5.0
    while len(frames) < expected and time.monotonic() < deadline:
        try:
            data, address = sock.recvfrom(65535)
        except TimeoutError:
            continue
        if (address[2] == PACKET_OUTGOING) != outgoing:
            continue
        # IPv4 (0x0800), UDP (17), destination port 6000.
        if data[12:14] == b"\x08\x00" and data[23] == 17 and data[36:38] == b"\x17\x70":
            frames.append(data)
    return frames


def _send_udp(topology) -> list[bytes]:
    """
    Send one datagram per payload size from host A to host B, each with its
    own TOS, and return the payloads host B received.
    """
    with netns.inside(topology.b):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with netns.inside(topology.a):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind((HOST_B, _UDP_PORT))
        receiver.settimeout(5.0)
        for index, (size, tos) in enumerate(zip(_PAYLOAD_SIZES, _TOS_VALUES, strict=True)):
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
            sender.sendto(bytes([index]) * size, (HOST_B, _UDP_PORT))
        return [receiver.recv(65535) for _ in _PAYLOAD_SIZES]
    finally:
        sender.close()
        receiver.close()


def test_ping_and_arp(hop):
    """
    ICMP echo crosses the GRE hop both ways, and ARP resolves host B's
    real MAC address on host A.
    """
    output = _ping(hop)
    assert "3 received" in output
    neighbours = json.loads(hop.a.ip("-j", "neigh", "show", HOST_B))
    assert [entry["lladdr"] for entry in neighbours] == [hop.mac(hop.b)]


def test_udp_frames_unchanged(hop):
    """
    UDP datagrams of every size arrive, and the Ethernet frames host B
    receives are byte for byte the frames host A sent.
    """
    _ping(hop, count=1)
    sent_capture = _capture_socket(hop.a, "ha0")
    received_capture = _capture_socket(hop.b, "hb0")
    try:
        payloads = _send_udp(hop)
        sent = _udp_frames(sent_capture, outgoing=True, expected=len(_PAYLOAD_SIZES))
        received = _udp_frames(received_capture, outgoing=False, expected=len(_PAYLOAD_SIZES))
    finally:
        sent_capture.close()
        received_capture.close()
    expected = [bytes([index]) * size for index, size in enumerate(_PAYLOAD_SIZES)]
    assert payloads == expected
    assert len(sent) == len(_PAYLOAD_SIZES)
    assert received == sent


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
def test_tshark_decodes_tunnel(hop, tmp_path):
    """
    tshark decodes the packets on the tunnel's wire as GRE carrying
    Ethernet, with the tunnel's key, increasing sequence numbers and the
    inner TOS copied to the outer header.
    """
    _ping(hop, count=1)
    capture = tmp_path / "tunnel.pcap"
    tcpdump = _start_capture(hop.wan, "wb", capture)
    try:
        _send_udp(hop)
        time.sleep(0.3)
    finally:
        tcpdump.terminate()
        tcpdump.wait(timeout=10)

    decode_as = ["-d", "udp.port==4754,gre"] if "udp" in hop.kind else []
    fields = ["ip.dsfield", "gre.proto", "gre.key", "gre.sequence_number", "eth.type", "udp.length"]
    command = [
        "tshark",
        "-r",
        str(capture),
        *decode_as,
        "-Y",
        f"ip.src=={HOST_A} && udp.dstport=={_UDP_PORT}",
    ]
    command += ["-T", "fields", "-E", "separator=;", "-E", "occurrence=a"]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout

    rows = [line.split(";") for line in output.splitlines() if line]
    assert len(rows) == len(_PAYLOAD_SIZES)
    sequence_numbers = []
    for row, tos in zip(rows, _TOS_VALUES, strict=True):
        outer_tos, inner_tos = row[0].split(",")
        assert int(outer_tos, 16) == tos
        assert int(inner_tos, 16) == tos
        assert int(row[1], 16) == 0x6558
        assert int(row[2], 16) == TUNNEL_KEY
        sequence_numbers.append(int(row[3]))
    assert sequence_numbers == sorted(sequence_numbers)
    assert len(set(sequence_numbers)) == len(sequence_numbers)


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="needs dnsmasq")
@pytest.mark.skipif(shutil.which("udhcpc") is None, reason="needs udhcpc (busybox)")
def test_dhcp_lease_across_hop(hop, tmp_path):
    """
    A DHCP client on host A gets a lease from dnsmasq on host B through the
    tunnel: broadcast DISCOVER and REQUEST cross it, as do OFFER and ACK.
    """
    leases = tmp_path / "leases"
    in_a = ["ip", "netns", "exec", hop.a.name]
    # Five attempts one second apart. The script /bin/true leaves ha0 as it is.
    dhcp_client = ["udhcpc", "-i", "ha0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", "/bin/true"]

    server = hop.b.popen(
        "dnsmasq",
        "--no-daemon",
        "--port=0",
        "--interface=hb0",
        "--bind-interfaces",
        "--no-ping",
        "--dhcp-range=10.0.0.100,10.0.0.150,255.255.255.0,1h",
        f"--dhcp-leasefile={leases}",
        f"--pid-file={tmp_path / 'dnsmasq.pid'}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        client = subprocess.run(
            [*in_a, *dhcp_client],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert client.returncode == 0, client.stderr
    assert "obtained" in client.stderr + client.stdout
    with open(leases, encoding="utf-8") as stream:
        lease_lines = stream.read().splitlines()
    assert any(hop.mac(hop.a) in line for line in lease_lines)


def test_too_big_packet(hop):
    """
    With the tunnel engine, a packet with DF that does not fit the tunnel
    gets ICMP "fragmentation needed" back to the sender.  The reported MTU
    is 1600 minus 20 bytes of outer IPv4, 12 of GRE with key and sequence
    number, 8 of UDP for GRE-in-UDP, and 14 of Ethernet.  The static table
    does no MTU handling: the kernel rejects the outer packet (EMSGSIZE),
    so the sender gets neither a reply nor an ICMP error.
    """
    inner_mtu = 1600 - 20 - 12 - 14 - (8 if "udp" in hop.kind else 0)
    in_a = ["ip", "netns", "exec", hop.a.name]
    for host, device in ((hop.a, "ha0"), (hop.b, "hb0")):
        host.ip("link", "set", device, "mtu", "1600")
    try:
        ping = subprocess.run(
            [*in_a, "ping", "-M", "do", "-s", "1560", "-c", "2", "-i", "0.3", "-W", "2", HOST_B],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    finally:
        for host, device in ((hop.a, "ha0"), (hop.b, "hb0")):
            host.ip("link", "set", device, "mtu", "1500")
    output = ping.stdout + ping.stderr
    if "table" in hop.kind:
        assert " 0 received" in output
        assert "mtu = " not in output
    else:
        assert f"mtu = {inner_mtu}" in output


def test_tap_to_tap_ping():
    """
    ICMP echo crosses one forwarder tap to tap.
    """
    with tap_to_tap() as topology:
        assert "3 received" in _ping(topology)
        counters = topology.stop_forwarders()
    [forwarder] = counters
    assert forwarder["bridge_errors"] == 0
    for name, port in forwarder["ports"].items():
        assert port["rx_frames"] >= 3, name
        assert port["tx_frames"] >= 3, name
        assert port["rx_errors"] == 0, name


def _start_capture(namespace, device: str, path) -> subprocess.Popen:
    tcpdump = namespace.popen(
        "tcpdump",
        "--immediate-mode",
        "-Z",
        "root",
        "-i",
        device,
        "-U",
        "-w",
        str(path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # tcpdump reports "listening on" once the capture is open.
    tcpdump.stderr.readline()
    return tcpdump


def _tagged_frame(
    source_mac: str,
    destination_mac: str,
    vlan: int,
    priority: int,
    source: str,
    destination: str,
    index: int,
) -> bytes:
    """
    Return a tagged UDP frame to port 7000 whose 40-byte payload repeats
    C{index}, built by scapy.
    """
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    packet = (
        Ether(src=source_mac, dst=destination_mac)
        / Dot1Q(vlan=vlan, prio=priority)
        / IP(src=source, dst=destination)
        / UDP(sport=7000, dport=7000)
        / (bytes([index]) * 40)
    )
    return bytes(packet)


def _tagged_rows(path, source: str) -> list[list[str]]:
    command = ["tshark", "-r", str(path), "-Y", f"ip.src=={source} && udp.dstport==7000"]
    command += ["-T", "fields", "-e", "vlan.id", "-e", "vlan.priority", "-e", "udp.payload"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split("\t") for line in output.splitlines() if line]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
def test_vlan_tags_cross_uplink(tmp_path):
    """
    802.1Q-tagged frames cross a TAP port and a packet-socket port both
    ways with VLAN ID and priority intact.  The kernel strips the tag of
    frames arriving on the uplink before the packet socket reads them, so
    the tags host A receives exist only because the port restored them.
    """
    with tap_to_uplink() as topology:
        mac_a, mac_b = topology.mac(topology.a), topology.mac(topology.b)
        to_b = [_tagged_frame(mac_a, mac_b, 100, 5, HOST_A, HOST_B, i) for i in range(3)]
        to_a = [_tagged_frame(mac_b, mac_a, 200, 3, HOST_B, HOST_A, i) for i in range(3)]
        captures = {"a": tmp_path / "a.pcap", "b": tmp_path / "b.pcap"}
        tcpdumps = []
        try:
            tcpdumps.append(_start_capture(topology.a, "ha0", captures["a"]))
            tcpdumps.append(_start_capture(topology.b, "hb0", captures["b"]))
            for host, device, frames in ((topology.a, "ha0", to_b), (topology.b, "hb0", to_a)):
                sender = _capture_socket(host, device)
                try:
                    for frame in frames:
                        sender.send(frame)
                finally:
                    sender.close()
            time.sleep(0.5)
        finally:
            for tcpdump in tcpdumps:
                tcpdump.terminate()
                tcpdump.wait(timeout=10)
        counters = topology.stop_forwarders()

    expected_at_b = [["100", "5", (bytes([i]) * 40).hex()] for i in range(3)]
    expected_at_a = [["200", "3", (bytes([i]) * 40).hex()] for i in range(3)]
    assert _tagged_rows(captures["b"], HOST_A) == expected_at_b
    assert _tagged_rows(captures["a"], HOST_B) == expected_at_a
    [forwarder] = counters
    assert forwarder["send_errors"] == 0
    assert forwarder["bridge_errors"] == 0


def _gre_payload(data: bytes) -> tuple[str, bytes] | None:
    """
    Return the outer source address and the GRE header with its payload of
    the Ethernet frame C{data}, or L{None} when it carries no GRE.
    """
    if data[12:14] != b"\x08\x00":
        return None
    header_length = (data[14] & 0x0F) * 4
    source = socket.inet_ntoa(data[26:30])
    payload = data[14 + header_length :]
    if data[23] == 47:
        return source, payload
    # GRE-in-UDP: destination port 4754 (RFC 8086 section 3).
    if data[23] == 17 and payload[2:4] == b"\x12\x92":
        return source, payload[8:]
    return None


def _keepalive_kind(gre: bytes) -> str:
    """
    Classify a GRE packet of an otherwise idle tunnel: a keepalive carries
    an IPv4 packet addressed back to its sender, and the peer's reflection
    is that inner packet sent on its own.
    """
    flags = int.from_bytes(gre[:2], "big")
    # RFC 2890 section 2: checksum, key and sequence number are 4 bytes each.
    length = 4 + sum(4 for bit in (0x8000, 0x2000, 0x1000) if flags & bit)
    protocol = gre[2:4]
    inner = gre[length:]
    if protocol == b"\x08\x00" and inner[:1] == b"\x45" and inner[9:10] == b"\x2f":
        return "keepalive"
    return "reflection"


def _wait_for_keepalives(sock: socket.socket, *, expected: int) -> dict:
    """
    Count keepalives and reflections per sender on the WAN link until each
    reached C{expected}, for at most 10 s and 1000 packets.
    """
    counts = {
        (source, kind): 0 for source in (WAN_A, WAN_B) for kind in ("keepalive", "reflection")
    }
    deadline = time.monotonic() + 10.0
    for _ in range(1000):
        if min(counts.values()) >= expected or time.monotonic() > deadline:
            break
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        outer = _gre_payload(data)
        if outer is None or outer[0] not in (WAN_A, WAN_B):
            continue
        counts[(outer[0], _keepalive_kind(outer[1]))] += 1
    return counts


@pytest.mark.parametrize("transport", ["ip", "udp"])
def test_keepalives_answered(transport):
    """
    With keepalives on, each forwarder's GRE port sends them on the tunnel
    engine's schedule over real sockets, and the other end's engine
    reflects them back.
    """
    with gre_hop(transport=transport, keepalive=0.2) as topology:
        wire = _capture_socket(topology.wan, "wb")
        try:
            # One more than the counters need on the wire, so the packets
            # counted below were handled before the forwarders stop.
            seen = _wait_for_keepalives(wire, expected=4)
        finally:
            wire.close()
        counters = topology.stop_forwarders()
    for (source, kind), count in seen.items():
        assert count >= 4, (source, kind, seen)
    for forwarder in counters:
        [gre] = [port for name, port in forwarder["ports"].items() if "gre" in name]
        assert gre.get("tunnel.keepalive-sent", 0) >= 3
        assert gre.get("tunnel.keepalive-reply", 0) >= 3
        assert gre.get("tunnel.keepalive-reflected", 0) >= 3
