# -*- test-case-name: tests.radio.test_service -*-
"""
Tests for L{roaming.radio.service.HostapdRadio} on a memory reactor, and
with L{roaming.radio.emulated.EmulatedRadio} over real UNIX sockets.
"""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from twisted.application.service import IService
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from roaming.radio import RADIO_KINDS, HostapdRadio, IRadio, make_radio
from roaming.radio.hostapd import ControlState
from roaming.radio.testing import MemoryRadio, RecordingListener

STATION = bytes.fromhex("020000000001")


class FakeDatagramPort:
    """
    A connected UNIX datagram port that records what is written to it.
    """

    def __init__(self, path, protocol, refuse, bind_address=None):
        self.path = path
        self.bindAddress = bind_address
        self.protocol = protocol
        self.written = []
        self.listening = True
        self.refuse = refuse

    def write(self, datagram):
        if self.refuse:
            self.protocol.connectionRefused()
            return
        self.written.append(datagram)

    def stopListening(self):
        self.listening = False


class FakeReactor(Clock):
    """
    A clock that also provides C{connectUNIXDatagram} with fake ports.

    @ivar server_up: whether connecting succeeds.
    @ivar refuse: whether new ports refuse writes.
    """

    def __init__(self):
        super().__init__()
        self.ports = []
        self.server_up = True
        self.refuse = False

    def connectUNIXDatagram(self, address, protocol, maxPacketSize, mode, bindAddress):
        port = FakeDatagramPort(address, protocol, self.refuse, bindAddress)
        self.ports.append(port)
        if not self.server_up:
            protocol.connectionFailed(FileNotFoundError(2, "No such file or directory"))
        return port


@pytest.fixture
def radio(tmp_path):
    reactor = FakeReactor()
    listener = RecordingListener()
    radio = HostapdRadio(
        str(tmp_path / "wlan0"),
        listener,
        interface="wlan0",
        local_path=str(tmp_path / "client"),
        reactor=reactor,
    )
    radio.reactor = reactor
    return radio


def start_attached(radio):
    radio.startService()
    port = radio.reactor.ports[-1]
    assert port.written == [b"ATTACH"]
    port.protocol.datagramReceived(b"OK\n")
    port.protocol.datagramReceived(b"")
    return port


def test_radio_provides_interfaces(radio):
    assert verifyObject(IRadio, radio)
    assert verifyObject(IService, radio)


def test_events_reach_listener(radio):
    port = start_attached(radio)
    port.protocol.datagramReceived(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01")
    port.protocol.datagramReceived(b"<3>AP-STA-DISCONNECTED 02:00:00:00:00:01")
    assert radio.listener.events == [("connected", STATION), ("disconnected", STATION)]
    assert radio.counters["events"] == 2


def test_malformed_message_counted(radio):
    port = start_attached(radio)
    port.protocol.datagramReceived(b"<3>AP-STA-CONNECTED nonsense")
    assert radio.counters["decode_errors"] == 1
    assert radio.listener.events == []
    assert radio.state is ControlState.ATTACHED


def test_listener_failure_does_not_stop_radio(radio):
    class Failing(RecordingListener):
        def station_connected(self, mac):
            raise RuntimeError("listener bug")

    radio.listener = Failing()
    port = start_attached(radio)
    port.protocol.datagramReceived(b"<3>AP-STA-CONNECTED 02:00:00:00:00:01")
    port.protocol.datagramReceived(b"<3>AP-STA-DISCONNECTED 02:00:00:00:00:01")
    assert radio.listener.events == [("disconnected", STATION)]


def test_timer_pings_and_reattaches(radio):
    port = start_attached(radio)
    port.written.clear()
    radio.reactor.advance(5.0)
    assert port.written == [b"PING"]
    radio.reactor.advance(1.0)
    assert radio.state is ControlState.DETACHED
    assert radio.counters["reattaches"] == 1
    radio.reactor.advance(1.0)
    assert not port.listening
    assert radio.reactor.ports[-1].written == [b"ATTACH"]


def test_refused_write_reopens_socket(radio):
    port = start_attached(radio)
    port.refuse = True
    radio.reactor.advance(5.0)
    assert radio.state is ControlState.DETACHED
    assert radio.counters["send_errors"] == 1
    radio.reactor.advance(1.0)
    assert len(radio.reactor.ports) == 2
    assert radio.reactor.ports[-1].written == [b"ATTACH"]


def test_missing_server_retries(radio):
    radio.reactor.server_up = False
    radio.startService()
    assert radio.state is ControlState.DETACHED
    assert radio.counters["send_errors"] == 1
    radio.reactor.advance(1.0)
    assert radio.counters["send_errors"] == 2
    radio.reactor.server_up = True
    radio.reactor.advance(1.0)
    assert radio.reactor.ports[-1].written == [b"ATTACH"]
    assert radio.state is ControlState.ATTACHING


def test_stop_detaches_and_cleans_up(radio):
    port = start_attached(radio)
    open(radio.local_path, "w").close()
    radio.stopService()
    assert port.written[-1] == b"DETACH"
    assert not port.listening
    assert not os.path.exists(radio.local_path)
    assert radio.reactor.getDelayedCalls() == []


def test_make_radio_kinds(tmp_path):
    listener = RecordingListener()
    for kind in RADIO_KINDS:
        radio = make_radio(kind, listener, interface="air0", control_path=str(tmp_path / "s"))
        assert isinstance(radio, HostapdRadio)
        assert radio.interface == "air0"


def test_make_radio_invalid_kind(tmp_path):
    with pytest.raises(ValueError, match="invalid radio kind 'wifi'"):
        make_radio("wifi", RecordingListener(), interface="air0", control_path="/x")


def test_memory_radio_reports_while_running():
    listener = RecordingListener()
    radio = MemoryRadio(listener)
    assert verifyObject(IRadio, radio)
    radio.connect(STATION)
    assert listener.events == []
    radio.startService()
    radio.connect(STATION)
    assert listener.events == [("connected", STATION)]
    assert radio.stations == {STATION}


# The socket test runs in a child interpreter because the global reactor
# cannot be restarted inside the test process.
SOCKET_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from twisted.internet import reactor, task
    from roaming.radio import EmulatedRadio, HostapdRadio
    from roaming.radio.testing import RecordingListener

    directory = sys.argv[1]
    server_path = directory + "/ap0"
    listener = RecordingListener()
    server = EmulatedRadio(server_path)
    server.listen()
    server.state.connect_station(bytes.fromhex("020000000009"))
    radio = HostapdRadio(server_path, listener, interface="air0",
                         local_path=directory + "/client", ping_interval=0.2,
                         reply_timeout=0.2, retry_interval=0.1)
    radio.startService()
    results = {"phase": "attach"}
    first = ("connected", bytes.fromhex("020000000009"))
    second = ("connected", bytes.fromhex("020000000001"))

    def poll():
        # Each phase waits for the event the previous one caused.
        global server
        attached = radio.state.value == "attached"
        if results["phase"] == "attach" and attached and first in listener.events:
            results["attached"] = radio.state.value
            results["told"] = server.connect_station(bytes.fromhex("020000000001"))
            results["phase"] = "notify"
        elif results["phase"] == "notify" and second in listener.events:
            # Restart the server with an empty station table.
            server.close()
            server = EmulatedRadio(server_path)
            server.listen()
            results["phase"] = "restart"
        elif (
            results["phase"] == "restart"
            and attached
            and radio.counters["reattaches"] >= 1
            and len(listener.events) >= 4
        ):
            results["phase"] = "done"
            finish()

    def finish():
        poller.stop()
        results["events"] = [[kind, mac.hex()] for kind, mac in listener.events]
        results["reattaches"] = radio.counters["reattaches"]
        results["state"] = radio.state.value
        radio.stopService()
        server.close()
        print(json.dumps(results))
        reactor.stop()

    poller = task.LoopingCall(poll)
    poller.start(0.02)
    # A deadline far beyond the few hundred milliseconds the steps take, so
    # a slow machine still finishes and a stuck phase is reported.
    deadline = reactor.callLater(20, finish)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: deadline.active() and deadline.cancel()
    )
    reactor.run()
    """
)


def test_radio_over_real_sockets(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", SOCKET_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["phase"] == "done"
    assert results["attached"] == "attached"
    assert results["told"] == 1
    assert results["events"] == [
        ["connected", "020000000009"],
        ["connected", "020000000001"],
        ["disconnected", "020000000001"],
        ["disconnected", "020000000009"],
    ]
    assert results["reattaches"] >= 1
    assert results["state"] == "attached"
    assert sorted(os.listdir(tmp_path)) == []


def test_default_socket_in_private_directory(tmp_path):
    """
    Without local_path the client socket lives in a fresh directory of mode
    0700 whose name does not contain the process ID, removed at stop.
    """
    reactor = FakeReactor()
    radios = [
        HostapdRadio(
            str(tmp_path / "wlan0"), RecordingListener(), interface="wlan0", reactor=reactor
        )
        for _ in range(2)
    ]
    for radio in radios:
        radio.startService()
    directories = [os.path.dirname(radio.local_path) for radio in radios]

    assert directories[0] != directories[1]
    for directory in directories:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert str(os.getpid()) not in os.path.basename(directory)
    assert reactor.ports[0].bindAddress == radios[0].local_path
    for radio in radios:
        radio.stopService()
    assert [os.path.exists(directory) for directory in directories] == [False, False]
