"""
Memory fakes for the daemon tests: devices, radio, reactor and a test PKI.
"""

import datetime
from pathlib import Path

from twisted.application.service import Service
from twisted.internet.testing import MemoryReactorClock

from roaming.control import pki
from roaming.ports.counters import PortCounters

ETC = Path(__file__).resolve().parents[2] / "etc"

#: The MAC address of every node's own TAP in the daemon tests.
OWN_MAC = bytes.fromhex("02ee00000001")


class MemoryPort:
    """
    A device port in memory: records sent frames, and lets the test feed
    received ones with L{receive}.
    """

    aggregation = False

    def __init__(self, name, kind):
        self.name = name
        self.kind = kind
        self.counters = PortCounters()
        self.sink = None
        self.started = False
        self.stopped = False
        self.sent = []

    def start_port(self, sink):
        self.sink = sink
        self.started = True

    def stop_port(self):
        self.stopped = True
        self.sink = None

    def send_frame(self, frame, agg_id=None):
        self.sent.append((agg_id, frame))
        self.counters.tx_frames += 1

    def receive(self, frame, agg_id=None):
        self.counters.rx_frames += 1
        self.sink(agg_id, frame)


class MemoryGrePort(MemoryPort):
    """
    A GRE port in memory, whose members are the tunnels of its table.
    """

    aggregation = True

    def __init__(self, name, kind, table):
        super().__init__(name, kind)
        self.table = table
        #: Packets dropped by the remote filter, as on a real GRE port.
        self.ignored = 0

    def member_ids(self):
        return [tunnel.agg_id for tunnel in self.table.tunnels()]

    def arm(self):
        self.armed = getattr(self, "armed", 0) + 1


def _fail_start(sink):
    raise OSError("device missing")


class FakeRadio(Service):
    """
    A radio service whose listener the test calls directly.
    """

    def __init__(self, kind, listener, interface, control_path):
        self.kind = kind
        self.listener = listener
        self.interface = interface
        self.control_path = control_path


class FakeDevices:
    """
    The L{roaming.tap.devices.Devices} of a test: every port in memory, and
    the netlink calls recorded.
    """

    def __init__(self, fail_on=None):
        #: Every port opened, in order.
        self.opened = []
        self.addresses = []
        self.links_up = []
        self.radios = []
        #: Interfaces kept off the host's IP stack, in order.
        self.isolated = []
        self.fail_on = fail_on

    def _record(self, port):
        self.opened.append(port)
        if self.fail_on == port.name:
            port.start_port = _fail_start
        return port

    def port(self, name):
        """
        Return the last opened port named C{name}.
        """
        return [port for port in self.opened if port.name == name][-1]

    def tap_port(self, interface):
        return self._record(MemoryPort(interface, "tap"))

    def packet_port(self, interface):
        return self._record(MemoryPort(interface, "packet"))

    def gre_port(self, transport, local, endpoint, udp_port, *, on_link_event, ignore_remote=None):
        port = MemoryGrePort(f"gre-{transport}:{local}", "gre", endpoint)
        port.udp_port = udp_port
        port.ignore_remote = ignore_remote
        return self._record(port)

    def configure_address(self, interface, address, gateway):
        self.addresses.append((interface, address, gateway))

    def set_up(self, interface):
        self.links_up.append(interface)

    def isolate_port(self, interface):
        self.isolated.append(interface)

    def hardware_address(self, interface):
        return OWN_MAC

    def radio(self, kind, listener, interface, control_path):
        radio = FakeRadio(kind, listener, interface, control_path)
        self.radios.append(radio)
        return radio


class FakeSocket:
    """
    A socket that records the options set on it.
    """

    def __init__(self):
        self.options = []

    def setsockopt(self, level, name, value):
        self.options.append((level, name, value))


class FakeMulticastPort:
    """
    What C{listenMulticast} returns in a test.
    """

    def __init__(self, port, protocol, interface):
        self.port = port
        self.protocol = protocol
        self.interface = interface
        self.listening = True
        self.socket = FakeSocket()

    def stopListening(self):
        self.listening = False


class DaemonReactor(MemoryReactorClock):
    """
    A memory reactor that also records multicast listeners.
    """

    def __init__(self):
        super().__init__()
        self.multicast = []

    def listenMulticast(
        self, port, protocol, interface="", maxPacketSize=8192, listenMultiple=False
    ):
        listening = FakeMulticastPort(port, protocol, interface)
        self.multicast.append(listening)
        return listening


def utc_now():
    """
    Return the current time, timezone-aware.
    """
    return datetime.datetime.now(datetime.UTC)


def write_pki(directory, nodes):
    """
    Create a CA and one certificate per C{(name, address)} in C{directory},
    named as roaming-pki names them and the etc/ examples expect: ca.crt,
    NAME.crt, NAME.key.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = utc_now()
    ca_certificate, ca_key = pki.create_ca("roaming test CA", now=now)
    pki.write_certificate(directory / "ca.crt", ca_certificate)
    for name, address in nodes:
        certificate, key = pki.issue_certificate(
            ca_certificate, ca_key, name, now=now, ip_addresses=[address]
        )
        pki.write_certificate(directory / f"{name}.crt", certificate)
        pki.write_private_key(directory / f"{name}.key", key)


def example_config(tmp_path, role, **replacements):
    """
    Copy etc/roaming-ROLE.toml into C{tmp_path} with its PKI, the database
    and the roamctl socket moved under C{tmp_path}, and C{replacements}
    (old text: new text) applied; return the new file's path.
    """
    text = (ETC / f"roaming-{role}.toml").read_text()
    name = "sc1" if role == "sc" else "ap1"
    text = text.replace(f"/var/lib/roaming/{name}.sqlite", str(tmp_path / f"{name}.sqlite"))
    text = text.replace(f"/run/roaming/{name}.sock", str(tmp_path / f"{name}.sock"))
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    # Both daemons of one test must trust the same CA, so it is made once.
    if not (tmp_path / "pki" / "ca.crt").exists():
        write_pki(tmp_path / "pki", [("sc1", "10.1.0.2"), ("ap1", "10.1.0.11")])
    path = tmp_path / f"roaming-{role}.toml"
    path.write_text(text)
    return path
