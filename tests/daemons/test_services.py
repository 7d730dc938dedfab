# -*- test-case-name: tests.daemons.test_services -*-
"""
Tests for the daemons' services built from the etc/ examples, on memory
devices and a memory reactor: what they open, in which order, what they
configure, and that they stop cleanly.
"""

import ipaddress
import json

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

from roaming.tap import ap, sc
from roaming.tap.lan import build_layer2_update
from roaming.tap.localapi import LocalAPIFactory
from roaming.tap.views import make_views
from tests.daemons.fakes import DaemonReactor, FakeDevices, example_config

# A station of subnet 10.2.0.0/24 sending an ARP request from 10.2.0.50:
# the first frame of a roaming client at an AP of subnet 10.1.0.0/24.
ROAMER = bytes.fromhex("02aa00000001")
ROAMER_ARP = (
    b"\xff" * 6
    + ROAMER
    + bytes.fromhex("08060001080006040001")
    + ROAMER
    + bytes((10, 2, 0, 50))
    + bytes(6)
    + bytes((10, 2, 0, 1))
).ljust(60, b"\x00")


def options_for(module, path):
    """
    Parse C{--config path} with the daemon's Options.
    """
    options = module.Options()
    options.parseOptions(["--config", str(path)])
    return options


def build(module, path, devices=None):
    """
    Build the daemon's service on memory devices and a memory reactor.
    """
    options = options_for(module, path)
    service_class = sc.SCService if module is sc else ap.APService
    reactor = DaemonReactor()
    devices = devices or FakeDevices()
    service = service_class(
        options["config_object"],
        options["credentials"],
        reactor=reactor,
        devices=devices,
        stop_reactor_on_failure=False,
    )
    return service, reactor, devices


class TestPlugins:
    """
    twistd finds both daemons.
    """

    def test_plugins_discoverable(self):
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        assert makers["roaming-sc"].module == "roaming.tap.sc"
        assert makers["roaming-ap"].module == "roaming.tap.ap"

    def test_options_come_from_module(self):
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        assert makers["roaming-sc"].options is sc.Options
        assert makers["roaming-ap"].options is ap.Options


class TestOptions:
    """
    A wrong file stops the daemon while twistd parses its command line.
    """

    def test_missing_config_option(self):
        with pytest.raises(usage.UsageError, match="missing --config"):
            sc.Options().parseOptions([])

    def test_invalid_config_names_key(self, tmp_path):
        path = example_config(tmp_path, "sc", **{'# transport = "ip"': 'transport = "gre"'})
        with pytest.raises(usage.UsageError) as caught:
            options_for(sc, path)
        assert f"{path}: gre.transport: invalid value 'gre'" in str(caught.value)

    def test_missing_tls_file_named(self, tmp_path):
        path = example_config(tmp_path, "ap")
        (tmp_path / "pki" / "ap1.key").unlink()
        with pytest.raises(usage.UsageError) as caught:
            options_for(ap, path)
        assert f"{path}: tls.key: file not found" in str(caught.value)

    def test_certificate_for_other_address(self, tmp_path):
        path = example_config(tmp_path, "ap", **{'address = "10.1.0.11"': 'address = "10.1.0.12"'})
        with pytest.raises(usage.UsageError) as caught:
            options_for(ap, path)
        assert "not node.address 10.1.0.12" in str(caught.value)

    def test_make_service_opens_nothing(self, tmp_path):
        service = sc.makeService(options_for(sc, example_config(tmp_path, "sc")))
        assert isinstance(service, sc.SCService)
        assert not service.running
        assert service.datapath.units == {}


class TestSCService:
    """
    roaming-sc from etc/roaming-sc.toml.
    """

    def test_start_opens_ports_in_order(self, tmp_path):
        service, _reactor, devices = build(sc, example_config(tmp_path, "sc"))
        service.startService()
        assert service.start_failure is None
        assert [port.name for port in devices.opened] == [
            "eth0",
            "rmbr0",
            "gre-ip:10.1.0.2",
            "gre-ip:10.1.0.2",
        ]
        assert all(port.started for port in devices.opened)
        assert devices.addresses == [
            (
                "rmbr0",
                ipaddress.IPv4Interface("10.1.0.2/24"),
                ipaddress.IPv4Address("10.1.0.1"),
            )
        ]
        unit = service.datapath.units[0]
        assert set(unit.ports) == {"lan", "self", "gre-ap", "gre-sc"}
        ports = {row["name"]: row for row in unit.bridge.ports()}
        assert ports["eth0"]["l3_learning"] is False
        assert ports["gre-sc"]["split_horizon"] is True
        assert ports["gre-ap"]["aggregation"] is True

    def test_listens_for_control_roamctl_metrics(self, tmp_path):
        service, reactor, _devices = build(sc, example_config(tmp_path, "sc"))
        service.startService()
        (ssl_port,) = reactor.sslServers
        assert ssl_port[0] == 7443
        assert ssl_port[4] == "10.1.0.2"
        (unix,) = reactor.unixServers
        assert unix[0] == str(tmp_path / "sc1.sock")
        assert unix[3] == 0o600
        (tcp,) = reactor.tcpServers
        assert (tcp[0], tcp[3]) == (9380, "127.0.0.1")

    def test_primary_does_not_dial(self, tmp_path):
        service, reactor, _devices = build(sc, example_config(tmp_path, "sc"))
        service.startService()
        assert service.controller.is_primary
        assert reactor.tcpClients == []

    def test_secondary_dials_primary(self, tmp_path):
        path = example_config(tmp_path, "sc", **{'primary = "10.1.0.2"': 'primary = "10.2.0.2"'})
        service, reactor, _devices = build(sc, path)
        service.startService()
        assert not service.controller.is_primary
        reactor.advance(0)
        hosts = [(client[0], client[1]) for client in reactor.tcpClients]
        assert hosts == [("10.2.0.2", 7443)]
        assert ipaddress.IPv4Address("10.2.0.2") in service.control.peers

    def test_stop_closes_everything(self, tmp_path):
        service, reactor, devices = build(sc, example_config(tmp_path, "sc"))
        service.startService()
        service.stopService()
        reactor.advance(1)
        assert all(port.stopped for port in devices.opened)
        assert service.database is None
        assert service.datapath.units[0].dispatcher.ports() == {}

    def test_failed_port_stops_started_ones(self, tmp_path):
        devices = FakeDevices(fail_on="rmbr0")
        service, reactor, devices = build(sc, example_config(tmp_path, "sc"), devices)
        service.startService()
        assert isinstance(service.start_failure, OSError)
        assert devices.port("eth0").stopped
        assert reactor.sslServers == []

    def test_database_survives_restart(self, tmp_path):
        path = example_config(tmp_path, "sc")
        service, reactor, _devices = build(sc, path)
        service.startService()
        from roaming.control.clientdb import ClientRecord

        service.database.put(ClientRecord(ROAMER, ip=ipaddress.IPv4Address("10.1.0.50")))
        service.stopService()
        reactor.advance(1)
        again, _, _ = build(sc, path)
        again.startService()
        assert again.database.get(ROAMER).ip == ipaddress.IPv4Address("10.1.0.50")
        assert again.client_rows()[0][:2] == ("02:aa:00:00:00:01", "10.1.0.50")


class TestAPService:
    """
    roaming-ap from etc/roaming-ap.toml.
    """

    def start(self, tmp_path):
        service, reactor, devices = build(ap, example_config(tmp_path, "ap"))
        service.startService()
        assert service.start_failure is None
        return service, reactor, devices

    def test_ports_and_address(self, tmp_path):
        service, _reactor, devices = self.start(tmp_path)
        assert [port.name for port in devices.opened] == [
            "eth0",
            "rmbr0",
            "gre-ip:10.1.0.11",
            "wlan0",
        ]
        assert devices.addresses[0][1] == ipaddress.IPv4Interface("10.1.0.11/24")
        unit = service.datapath.units[0]
        assert set(unit.ports) == {"lan", "self", "gre-sc", "radio:wlan0"}

    def test_vsc_without_mobility_learns_by_mac(self, tmp_path):
        path = example_config(tmp_path, "ap", **{"l3_mobility = true": "l3_mobility = false"})
        service, _reactor, devices = build(ap, path)
        service.startService()
        ports = {row["name"]: row for row in service.datapath.units[0].bridge.ports()}
        assert ports["wlan0"]["l3_learning"] is False
        devices.port("wlan0").receive(ROAMER_ARP)
        assert devices.port("gre-ip:10.1.0.11").sent == []
        (radio,) = devices.radios
        radio.listener.station_connected(ROAMER)
        assert ROAMER not in service.access_point.stations

    def test_radio_from_config(self, tmp_path):
        _service, _reactor, devices = self.start(tmp_path)
        (radio,) = devices.radios
        assert radio.kind == "hostapd"
        assert radio.interface == "wlan0"
        assert radio.control_path == "/var/run/hostapd/wlan0"
        assert radio.running

    def test_l3_preset_points_at_controller(self, tmp_path):
        service, _reactor, _devices = self.start(tmp_path)
        unit = service.datapath.units[0]
        (entry,) = unit.bridge.l3.entries()
        assert entry.network == ipaddress.IPv4Network("10.1.0.0/24")
        assert entry.positive is False
        assert entry.port == unit.ports["gre-sc"]
        assert service.datapath.tunnels() == [("sc", ipaddress.IPv4Address("10.1.0.2"), 1)]

    def test_dials_controller(self, tmp_path):
        _service, reactor, _devices = self.start(tmp_path)
        reactor.advance(0)
        assert [(c[0], c[1]) for c in reactor.tcpClients] == [("10.1.0.2", 7443)]

    def test_roamer_first_frame_goes_to_controller(self, tmp_path):
        service, _reactor, devices = self.start(tmp_path)
        gre = devices.port("gre-ip:10.1.0.11")
        devices.port("wlan0").receive(ROAMER_ARP)
        assert gre.sent == [(1, ROAMER_ARP)]
        assert devices.port("eth0").sent == []
        assert service.stages.counts["roamer-detected"] == 1

    def test_station_connected_logs_stages(self, tmp_path):
        service, _reactor, devices = self.start(tmp_path)
        (radio,) = devices.radios
        radio.listener.station_connected(ROAMER)
        assert service.stages.counts["station-connected"] == 1
        assert ROAMER in service.access_point.stations
        frame = ROAMER + bytes.fromhex("02bb00000001") + b"\x08\x00" + bytes(46)
        devices.port("eth0").receive(frame)
        assert (None, frame) in devices.port("wlan0").sent
        assert service.stages.counts["first-frame-back"] == 1
        devices.port("eth0").receive(frame)
        assert service.stages.counts["first-frame-back"] == 1

    def test_layer2_update_on_lan(self, tmp_path):
        from roaming.control.actions import SendLayer2Update

        service, _reactor, devices = self.start(tmp_path)
        service.control.run([SendLayer2Update(ROAMER, 0)])
        assert devices.port("eth0").sent == [(None, build_layer2_update(ROAMER))]

    def test_views_answer(self, tmp_path):
        service, _reactor, devices = self.start(tmp_path)
        devices.port("wlan0").receive(ROAMER_ARP)
        api = LocalAPIFactory(make_views(service))
        replies = {
            name: api.respond(json.dumps({"request": name}).encode())
            for name in ("status", "fdb", "l3", "tunnels", "peers", "clients", "counters")
        }
        assert all(reply["ok"] for reply in replies.values()), replies
        rows = {row[1]: row for row in replies["fdb"]["rows"]}
        assert set(rows) == {"02:aa:00:00:00:01", "02:ee:00:00:00:01"}
        fdb_row = rows["02:aa:00:00:00:01"]
        assert fdb_row[:5] == [0, "02:aa:00:00:00:01", "10.2.0.50", "wlan0", "gre-sc:10.1.0.2"]
        assert rows["02:ee:00:00:00:01"][3] == "rmbr0"
        assert replies["l3"]["rows"] == [[0, "10.1.0.0/24", "negative", "gre-sc:10.1.0.2"]]
        status = dict(replies["status"]["rows"])
        assert status["name"] == "ap1"
        assert status["controller_up"] is False
        counters = {(row[0], row[1]): row[2] for row in replies["counters"]["rows"]}
        assert counters[("roam_stages", "stage=roamer-detected")] == 1

    def test_stop_leaves_multicast(self, tmp_path):
        service, reactor, devices = self.start(tmp_path)
        service.stopService()
        reactor.advance(1)
        assert not reactor.multicast[0].listening
        assert all(port.stopped for port in devices.opened)
        assert not devices.radios[0].running

    def test_status_shows_radio_attachment(self, tmp_path):
        from roaming.radio.hostapd import ControlState

        service, _reactor, devices = self.start(tmp_path)
        status = dict(LocalAPIFactory(make_views(service)).respond(b'{"request":"status"}')["rows"])
        assert status["radios_attached"] == "0/1"
        devices.radios[0].state = ControlState.ATTACHED
        status = dict(LocalAPIFactory(make_views(service)).respond(b'{"request":"status"}')["rows"])
        assert status["radios_attached"] == "1/1"

    def test_local_api_counters_exported(self, tmp_path):
        service, _reactor, _devices = self.start(tmp_path)
        reply = LocalAPIFactory(make_views(service)).respond(b'{"request":"counters"}')
        counters = {(row[0], row[1]): row[2] for row in reply["rows"]}
        assert counters[("local_api_events", "event=rejected_connections")] == 0
        assert counters[("local_api_connections", "")] == 0

    def test_operator_counters_exported(self, tmp_path):
        """
        TLS rejections seen by the verify callback of both the listening and
        the dialling side, GRE packets dropped by a port's remote filter,
        and LAN broadcasts relayed between tunnels are all readable with
        roamctl counters.
        """
        from roaming.control.tls import RejectionReason

        service, _reactor, _devices = self.start(tmp_path)
        control = service.control
        control.server_tls.counters.rejected[RejectionReason.UNTRUSTED_CA] += 1
        client_tls = control.client_tls(ipaddress.IPv4Address("10.1.0.2"))
        client_tls.counters.rejected[RejectionReason.UNTRUSTED_CA] += 2
        client_tls.counters.rejected[RejectionReason.WRONG_IDENTITY] += 1
        control.node.counters.tls_rejected["no-certificate"] += 4
        (gre,) = service.datapath.gre.values()
        gre.port.ignored = 5
        service.datapath.units[0].dispatcher.relayed = 6
        reply = LocalAPIFactory(make_views(service)).respond(b'{"request":"counters"}')
        counters = {(row[0], row[1]): row[2] for row in reply["rows"]}
        assert counters[("control_tls_rejected", "reason=untrusted-ca")] == 3
        assert counters[("control_tls_rejected", "reason=wrong-identity")] == 1
        assert counters[("control_tls_rejected", "reason=no-certificate")] == 4
        assert counters[("gre_ignored", f"port={gre.port.name}")] == 5
        assert counters[("dispatch_relayed", "vlan=0")] == 6

    def test_iapp_socket_on_node_interface(self, tmp_path):
        """
        The AP opens its IEEE 802.11F socket with
        L{roaming.control.iapp_udp}: bound to the IAPP group and to the
        node's own interface, so it hears only its LAN, and its counters are
        exported.
        """
        import socket

        from roaming.control.iapp_udp import IappMulticastProtocol

        service, reactor, _devices = self.start(tmp_path)
        (listening,) = reactor.multicast
        assert isinstance(listening.protocol, IappMulticastProtocol)
        assert (listening.port, listening.interface) == (3517, "224.0.1.178")
        assert listening.socket.options == [(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"rmbr0\0")]
        assert listening.protocol.interface_address == ipaddress.IPv4Address("10.1.0.11")
        listening.protocol.datagramReceived(b"\x07", ("10.1.0.12", 3517))
        reply = LocalAPIFactory(make_views(service)).respond(b'{"request":"counters"}')
        counters = {(row[0], row[1]): row[2] for row in reply["rows"]}
        assert counters[("iapp_decode_errors", "")] == 1
        assert counters[("iapp_received", "")] == 0

    """
    An operating system or database error at start is logged as one line
    naming the file and the configuration key, with no traceback.
    """

    def start_failing(self, tmp_path, role=sc, **changes):
        from twisted.logger import Logger

        service, reactor, _devices = build(role, example_config(tmp_path, role.Options.role))
        events = []
        service.log = Logger(observer=events.append)
        for name, value in changes.items():
            setattr(reactor, name, value)
        service.startService()
        failures = [event for event in events if "failed to start" in event["log_format"]]
        assert len(failures) == 1
        (event,) = failures
        assert "log_failure" not in event
        return service, event

    def problem_line(self, event):
        from twisted.logger import eventAsJSON, formatEvent

        text = formatEvent(event)
        assert "\n" not in text
        # The line survives a JSON log observer (twist --log-format=json).
        assert event["problem"] in eventAsJSON(event)
        return text

    def test_missing_interface_names_key(self, tmp_path, monkeypatch):
        import errno

        from twisted.internet.error import CannotListenError

        from tests.daemons import fakes

        def fail(sink):
            raise CannotListenError(None, "eth0", OSError(errno.ENODEV, "No such device"))

        monkeypatch.setattr(fakes, "_fail_start", fail)
        service, _reactor, _devices = build(sc, example_config(tmp_path, "sc"), FakeDevices("eth0"))
        from twisted.logger import Logger

        events = []
        service.log = Logger(observer=events.append)
        service.startService()
        (event,) = [event for event in events if "failed to start" in event["log_format"]]
        line = self.problem_line(event)
        path = tmp_path / "roaming-sc.toml"
        assert f"{path}: ports.lan.interface: interface eth0 not found" in line
        assert service.start_problem.key == "ports.lan.interface"

    def test_own_interface_in_use_names_node_interface(self, tmp_path, monkeypatch):
        import errno

        from twisted.internet.error import CannotListenError

        from tests.daemons import fakes

        def fail(sink):
            raise CannotListenError(None, "rmbr0", OSError(errno.EINVAL, "Invalid argument"))

        monkeypatch.setattr(fakes, "_fail_start", fail)
        service, _reactor, _devices = build(
            sc, example_config(tmp_path, "sc"), FakeDevices("rmbr0")
        )
        service.startService()
        assert service.start_problem.key == "node.interface"
        assert "Invalid argument" in service.start_problem.reason

    def test_metrics_address_missing(self, tmp_path):
        import errno

        from twisted.internet.error import CannotListenError

        def listen_tcp(port, factory, backlog=50, interface=""):
            error = OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
            raise CannotListenError(interface, port, error)

        service, event = self.start_failing(tmp_path, listenTCP=listen_tcp)
        line = self.problem_line(event)
        assert service.start_problem.key == "metrics.listen"
        assert "cannot listen on 127.0.0.1:9380" in line
        assert "the node has no such address" in line

    def test_roamctl_socket_failure(self, tmp_path):
        import errno

        from twisted.internet.error import CannotListenError

        def listen_unix(address, factory, backlog=50, mode=0o666, wantPID=0):
            raise CannotListenError(None, address, OSError(errno.EADDRINUSE, "Address in use"))

        service, _event = self.start_failing(tmp_path, listenUNIX=listen_unix)
        assert service.start_problem.key == "roamctl.socket"
        assert "another program uses it" in service.start_problem.reason

    def test_control_port_failure(self, tmp_path):
        import errno

        from twisted.internet.error import CannotListenError

        def listen_ssl(port, factory, contextFactory, backlog=50, interface=""):
            raise CannotListenError(interface, port, OSError(errno.EADDRINUSE, "Address in use"))

        service, _event = self.start_failing(tmp_path, listenSSL=listen_ssl)
        assert service.start_problem.key == "control.port"
        assert "10.1.0.2:7443" in service.start_problem.reason

    def test_database_error_names_path(self, tmp_path):
        import attrs

        from roaming.config import DatabaseConfig

        options = options_for(sc, example_config(tmp_path, "sc"))
        directory = tmp_path / "clients.sqlite"
        directory.mkdir()
        loaded = attrs.evolve(options["config_object"], database=DatabaseConfig(str(directory)))
        service = sc.SCService(
            loaded,
            options["credentials"],
            reactor=DaemonReactor(),
            devices=FakeDevices(),
            stop_reactor_on_failure=False,
        )
        service.startService()
        assert service.start_problem.key == "database.path"
        assert str(directory) in service.start_problem.reason

    def test_bug_keeps_traceback(self, tmp_path, monkeypatch):
        from twisted.logger import Logger

        service, _reactor, _devices = build(sc, example_config(tmp_path, "sc"))
        events = []
        service.log = Logger(observer=events.append)
        monkeypatch.setattr(service, "start_role", lambda: 1 / 0)
        service.startService()
        (event,) = [event for event in events if "failed to start" in event["log_format"]]
        assert "log_failure" in event
        assert service.start_problem is None


def test_twist_start_failure_one_line(tmp_path):
    """
    Under C{twist} with JSON logs, a missing interface ends the daemon with
    exit status 1 and one line naming the key, and no traceback.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    missing = f"rmcfg{os.getpid() % 100000}"
    path = example_config(tmp_path, "sc", **{'interface = "eth0"': f'interface = "{missing}"'})
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "twisted", "--log-format=json", "roaming-sc"]
    finished = subprocess.run(
        [*command, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=tmp_path,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 1, output
    assert "Traceback" not in output
    expected = f"{path}: ports.lan.interface: interface {missing} not found"
    lines = [line for line in output.splitlines() if expected in line]
    # One plain line on stderr and the same text inside the JSON event.
    assert len(lines) == 2, output
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert events[0]["problem"].startswith(expected)


@pytest.mark.parametrize(
    ("interface", "key"),
    [
        ("eth0", "ports.lan.interface"),
        ("eth0.10", "ports.lan.interface"),
        ("wlan0", "ports.radio.interface"),
        ("wlan1", "vsc[1].interface"),
        ("rmbr0", "node.interface"),
    ],
)
def test_start_failure_key_of_interface(tmp_path, interface, key):
    import errno

    import attrs
    from twisted.internet.error import CannotListenError

    from roaming.config import VSCConfig
    from roaming.tap.startup import describe_start_failure

    loaded = options_for(ap, example_config(tmp_path, "ap"))["config_object"]
    guests = VSCConfig(2, "guests", "guests", 10, "wlan1")
    loaded = attrs.evolve(loaded, vscs=(*loaded.vscs, guests))
    error = CannotListenError(None, interface, OSError(errno.ENODEV, "No such device"))
    problem = describe_start_failure(loaded, "ports", error)
    assert problem.key == key
    assert problem.path == str(loaded.path)
    assert interface in problem.reason


def test_start_failure_other_error_not_described(tmp_path):
    from roaming.tap.startup import describe_start_failure

    loaded = options_for(sc, example_config(tmp_path, "sc"))["config_object"]
    assert describe_start_failure(loaded, "ports", ZeroDivisionError()) is None
