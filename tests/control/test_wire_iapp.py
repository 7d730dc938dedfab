# -*- test-case-name: tests.control.test_wire_iapp -*-
"""
Tests for L{roaming.control.iapp_udp}: socket options and packets on a
memory transport, and ADD-notify between two interfaces of a veth pair in a
network namespace (root only), captured and decoded by tshark.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from twisted.internet.defer import succeed

from roaming.control.actions import SendIappAddNotify, TunnelUp
from roaming.control.iapp_udp import IappMulticastProtocol

MAC = bytes.fromhex("020000000001")
LAN_ADDRESS = "192.0.2.10"

# An ADD-notify for 02:00:00:00:00:01 with sequence 0 and identifier 1, laid
# out field by field as IEEE 802.11F-2003 and hostapd's src/ap/iapp.c define
# it: version 0, command 0, identifier, length 16, address length 6,
# reserved 0, the MAC address, the sequence number.
EXPECTED_PACKET = bytes.fromhex("00000001001006000200000000010000")


class FakeMulticastTransport:
    """
    Records the calls an IAPP protocol makes on its multicast port.
    """

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.fail_with: OSError | None = None

    def setOutgoingInterface(self, address: str) -> None:
        self.calls.append(("outgoing", address))

    def setTTL(self, ttl: int) -> None:
        self.calls.append(("ttl", ttl))

    def setLoopbackMode(self, mode: bool) -> None:
        self.calls.append(("loopback", mode))

    def joinGroup(self, group: str, interface: str):
        self.calls.append(("join", group, interface))
        return succeed(None)

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.written.append((data, address))


def make_protocol(**options) -> tuple[IappMulticastProtocol, FakeMulticastTransport, list]:
    notices: list = []
    protocol = IappMulticastProtocol(
        LAN_ADDRESS, on_add_notify=lambda mac, sender: notices.append((mac, sender)), **options
    )
    transport = FakeMulticastTransport()
    protocol.makeConnection(transport)
    return protocol, transport, notices


def test_socket_options() -> None:
    """
    The protocol sends through the LAN interface with TTL 1, no loopback,
    and joins 224.0.1.178 on that interface.
    """
    _, transport, _ = make_protocol()
    assert ("outgoing", LAN_ADDRESS) in transport.calls
    assert ("ttl", 1) in transport.calls
    assert ("loopback", False) in transport.calls
    assert ("join", "224.0.1.178", LAN_ADDRESS) in transport.calls


def test_send_packet_layout() -> None:
    """
    An ADD-notify goes to 224.0.1.178 port 3517 with the 802.11F layout.
    """
    protocol, transport, _ = make_protocol()
    protocol.send(MAC)
    assert transport.written == [(EXPECTED_PACKET, ("224.0.1.178", 3517))]
    assert protocol.counters.sent == 1


def test_identifier_increments() -> None:
    """
    Each packet carries the next identifier.
    """
    protocol, transport, _ = make_protocol()
    protocol.send(MAC)
    protocol.send(MAC, sequence=7)
    second = transport.written[1][0]
    assert second[2:4] == b"\x00\x02"
    assert second[14:16] == b"\x00\x07"


def test_receive_from_other_ap() -> None:
    """
    A valid ADD-notify from another AP reaches the callback with the
    sender's address.
    """
    protocol, _, notices = make_protocol()
    protocol.datagramReceived(EXPECTED_PACKET, ("192.0.2.11", 3517))
    assert notices == [(MAC, IPv4Address("192.0.2.11"))]
    assert protocol.counters.received == 1


def test_own_packet_ignored() -> None:
    """
    Our own packet, looped back, is counted and ignored.
    """
    protocol, _, notices = make_protocol()
    protocol.datagramReceived(EXPECTED_PACKET, (LAN_ADDRESS, 3517))
    assert notices == []
    assert protocol.counters.own == 1


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        EXPECTED_PACKET[:5],
        EXPECTED_PACKET[:15],
        b"\x01" + EXPECTED_PACKET[1:],
        EXPECTED_PACKET[:1] + b"\x01" + EXPECTED_PACKET[2:],
        EXPECTED_PACKET[:8] + b"\x01\x00\x00\x00\x00\x01" + EXPECTED_PACKET[14:],
    ],
    ids=["empty", "runt", "truncated", "version", "command", "group-mac"],
)
def test_malformed_packet_dropped(packet: bytes) -> None:
    """
    Malformed packets are counted and dropped without a callback.
    """
    protocol, _, notices = make_protocol()
    protocol.datagramReceived(packet, ("192.0.2.11", 3517))
    assert notices == []
    assert protocol.counters.decode_errors == 1


def test_send_error_counted() -> None:
    """
    An OS error while sending is counted, not raised.
    """
    protocol, transport, _ = make_protocol()
    transport.fail_with = OSError(101, "Network is unreachable")
    protocol.send(MAC)
    assert protocol.counters.send_errors == 1
    assert protocol.counters.sent == 0


def test_handle_action() -> None:
    """
    Only SendIappAddNotify actions are carried out.
    """
    protocol, transport, _ = make_protocol()
    assert protocol.handle_action(SendIappAddNotify(MAC))
    assert not protocol.handle_action(TunnelUp(IPv4Address("10.0.0.1")))
    assert len(transport.written) == 1


# Real sockets in a network namespace.

CHILD = textwrap.dedent(
    """
    import json, sys
    from twisted.internet import reactor, task
    from roaming.control.iapp_udp import IappMulticastProtocol, listen_iapp

    received = {"a": [], "b": []}

    def recorder(name):
        return lambda mac, sender: received[name].append([mac.hex(), str(sender)])

    side_a = IappMulticastProtocol("10.77.0.1", on_add_notify=recorder("a"))
    side_b = IappMulticastProtocol("10.77.0.2", on_add_notify=recorder("b"))
    listen_iapp(reactor, side_a, device=sys.argv[1])
    listen_iapp(reactor, side_b, device=sys.argv[2])

    # B answers A's notify with its own. A's looped-back copy of its own
    # packet, if the protocol failed to drop it, reaches A before B's
    # answer does, so stopping at B's answer cannot miss it.
    def poll():
        if received["b"] and not received["answered"]:
            received["answered"] = True
            side_b.send(bytes.fromhex("020000000002"))
        if received["a"]:
            poller.stop()
            reactor.stop()

    received["answered"] = False
    poller = task.LoopingCall(poll)
    poller.start(0.02)
    reactor.callWhenRunning(side_a.send, bytes.fromhex("020000000001"))
    # A bound far beyond the milliseconds the exchange takes.
    reactor.callLater(20, reactor.stop)
    reactor.run()
    del received["answered"]
    print(json.dumps(received))
    """
)


def run(*command: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.netns
def test_add_notify_between_interfaces(tmp_path: Path) -> None:
    """
    An ADD-notify sent on one end of a veth pair reaches the AP bound to the
    other end and not the sender, and the answer travels back the same way;
    tshark sees UDP to 224.0.1.178:3517 with
    TTL 1 and the expected payload.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("ip", "tcpdump", "tshark"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    pid = os.getpid()
    namespace = f"rmtst-iapp-{pid}"
    side_a, side_b = f"rmia{pid % 100000}", f"rmib{pid % 100000}"
    capture = tmp_path / "iapp.pcap"
    created = run("ip", "netns", "add", namespace)
    if created.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
    tcpdump = None
    try:
        in_namespace = ("ip", "netns", "exec", namespace)
        for command in (
            ("ip", "link", "add", side_a, "type", "veth", "peer", "name", side_b),
            ("ip", "addr", "add", "10.77.0.1/24", "dev", side_a),
            ("ip", "addr", "add", "10.77.0.2/24", "dev", side_b),
            ("ip", "link", "set", side_a, "up"),
            ("ip", "link", "set", side_b, "up"),
            ("ip", "link", "set", "lo", "up"),
            # Both ends live in one namespace, so the receiving end sees a
            # local source address; accept it instead of dropping it as a
            # martian.
            ("sysctl", "-qw", f"net.ipv4.conf.{side_a}.accept_local=1"),
            ("sysctl", "-qw", f"net.ipv4.conf.{side_b}.accept_local=1"),
            ("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"),
            ("sysctl", "-qw", f"net.ipv4.conf.{side_a}.rp_filter=0"),
            ("sysctl", "-qw", f"net.ipv4.conf.{side_b}.rp_filter=0"),
        ):
            result = run(*in_namespace, *command)
            assert result.returncode == 0, result.stderr
        tcpdump = subprocess.Popen(
            [*in_namespace, "tcpdump", "-i", side_b, "-U", "-c", "1", "-w", str(capture),
             "udp", "port", "3517"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        # tcpdump reports "listening on" once the capture is open.
        ready, _, _ = select.select([tcpdump.stderr], [], [], 10.0)
        assert ready, "tcpdump did not open the capture within 10 s"
        assert b"listening on" in tcpdump.stderr.readline()
        environment = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
        child = subprocess.run(
            [*in_namespace, sys.executable, "-c", CHILD, side_a, side_b],
            capture_output=True, text=True, timeout=30, env=environment, check=False,
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
        received = json.loads(child.stdout.strip().splitlines()[-1])
        assert received["b"][0] == ["020000000001", "10.77.0.1"]
        assert received["a"] == [["020000000002", "10.77.0.2"]]
        tcpdump.wait(timeout=10)
        # tshark's IAPP dissector follows a draft older than 802.11F, so it
        # checks only the version and command octets; the payload is compared
        # whole with the expected packet.
        fields = run(
            "tshark", "-r", str(capture), "-d", "udp.port==3517,iapp",
            "-T", "fields", "-E", "separator=,",
            "-e", "ip.src", "-e", "ip.dst", "-e", "ip.ttl", "-e", "udp.dstport",
            "-e", "iapp.version", "-e", "iapp.type", "-e", "udp.payload",
        )  # fmt: skip
        assert fields.returncode == 0, fields.stderr
        source, destination, ttl, port, version, command, payload = fields.stdout.strip().split(",")
        assert (source, destination, ttl, port) == ("10.77.0.1", "224.0.1.178", "1", "3517")
        assert (version, command) == ("0", "0")
        assert bytes.fromhex(payload) == EXPECTED_PACKET
    finally:
        if tcpdump is not None and tcpdump.poll() is None:
            tcpdump.kill()
            tcpdump.wait(timeout=10)
        run("ip", "netns", "delete", namespace)
