# -*- test-case-name: tests.daemons.test_roamctl -*-
"""
Tests for L{roaming.roamctl} and the daemon side of its socket,
L{roaming.tap.localapi}.
"""

import io
import json
import socket
import socketserver
import threading

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport

from roaming import roamctl
from roaming.tap.localapi import LocalAPIFactory, Table

FDB = Table(
    ("vlan", "mac", "port", "tunnel", "age"),
    [
        (0, b"\x02\x00\x00\x00\x00\x01", "eth0", None, 1.5),
        (0, b"\x02\x00\x00\x00\x00\x02", "gre-ip:10.1.0.11", "10.2.0.2", 12.25),
    ],
)


def failing_view():
    raise RuntimeError("bridge gone")


VIEWS = {
    "fdb": lambda: FDB,
    "counters": lambda: Table(("name", "value"), [("frames", 3)]),
    "peers": failing_view,
}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            reply = self.server.api.respond(line.rstrip(b"\n"))
            self.wfile.write(json.dumps(reply).encode() + b"\n")


@pytest.fixture
def daemon_socket(tmp_path):
    """
    Serve L{VIEWS} on a UNIX socket from a thread, as a daemon would, and
    return the socket path.
    """
    path = tmp_path / "daemon.sock"
    server = socketserver.ThreadingUnixStreamServer(str(path), _Handler)
    server.api = LocalAPIFactory(VIEWS)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class TestRespond:
    """
    L{LocalAPIFactory.respond} turns request lines into response objects.
    """

    def test_known_view(self):
        reply = LocalAPIFactory(VIEWS).respond(b'{"request": "fdb"}')
        assert reply["ok"] is True
        assert reply["request"] == "fdb"
        assert reply["columns"] == ["vlan", "mac", "port", "tunnel", "age"]
        assert reply["rows"][0] == [0, "02:00:00:00:00:01", "eth0", None, 1.5]

    def test_unknown_view(self):
        reply = LocalAPIFactory(VIEWS).respond(b'{"request": "routes"}')
        assert reply["ok"] is False
        assert "unknown request 'routes'" in reply["error"]
        assert "counters, fdb, peers" in reply["error"]

    def test_invalid_json(self):
        reply = LocalAPIFactory(VIEWS).respond(b"fdb")
        assert reply["ok"] is False
        assert reply["error"].startswith("invalid JSON request")

    def test_wrong_shape(self):
        reply = LocalAPIFactory(VIEWS).respond(b'["fdb"]')
        assert reply["ok"] is False
        assert "expected" in reply["error"]

    def test_failing_view_reported(self):
        reply = LocalAPIFactory(VIEWS).respond(b'{"request": "peers"}')
        assert reply["ok"] is False
        assert "bridge gone" in reply["error"]


class TestProtocol:
    """
    The line protocol sends one JSON line for each request line.
    """

    def connect(self):
        protocol = LocalAPIFactory(VIEWS, reactor=task.Clock()).buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_two_requests_two_lines(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b'{"request": "counters"}\n{"request": "fdb"}\n')
        lines = transport.value().split(b"\n")
        assert lines[-1] == b""
        assert [json.loads(line)["request"] for line in lines[:-1]] == ["counters", "fdb"]

    def test_request_split_across_reads(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b'{"request": "coun')
        assert transport.value() == b""
        protocol.dataReceived(b'ters"}\n')
        assert json.loads(transport.value())["rows"] == [["frames", 3]]

    def test_oversized_request_closes(self):
        protocol, transport = self.connect()
        protocol.dataReceived(b"x" * 5000)
        assert transport.disconnecting
        assert b"longer than 1024 bytes" in transport.value()


class TestTable:
    """
    L{Table} checks its shape and converts values for JSON.
    """

    def test_row_length_checked(self):
        with pytest.raises(ValueError, match="2 values for 3 columns"):
            Table(("a", "b", "c"), [(1, 2)])

    def test_from_records(self):
        table = Table.from_records(("a", "b"), [{"a": 1, "b": 2, "c": 3}, {"b": 4}])
        assert table.rows == ((1, 2), (None, 4))


class TestFormatTable:
    """
    L{roamctl.format_table} aligns columns.
    """

    def test_layout(self):
        text = roamctl.format_table(
            ["mac", "age", "up"], [["02:00:00:00:00:01", 1.5, True], ["x", 12, None]]
        )
        assert text.splitlines() == [
            "MAC                  AGE  UP",
            "-----------------  -----  ---",
            "02:00:00:00:00:01  1.500  yes",
            "x                     12  -",
        ]

    def test_empty_table(self):
        text = roamctl.format_table(["mac", "port"], [])
        assert text.splitlines() == ["MAC  PORT", "---  ----"]


class TestMain:
    """
    L{roamctl.main} against a daemon socket served from memory.
    """

    def test_table_output(self, daemon_socket):
        out = io.StringIO()
        assert roamctl.main(["--socket", str(daemon_socket), "fdb"], stdout=out) == 0
        lines = out.getvalue().splitlines()
        assert lines[0].split() == ["VLAN", "MAC", "PORT", "TUNNEL", "AGE"]
        assert lines[2].split() == ["0", "02:00:00:00:00:01", "eth0", "-", "1.500"]
        assert lines[3].split() == [
            "0",
            "02:00:00:00:00:02",
            "gre-ip:10.1.0.11",
            "10.2.0.2",
            "12.250",
        ]

    def test_json_output(self, daemon_socket):
        out = io.StringIO()
        assert roamctl.main(["--socket", str(daemon_socket), "--json", "fdb"], stdout=out) == 0
        records = json.loads(out.getvalue())
        assert records[1] == {
            "vlan": 0,
            "mac": "02:00:00:00:00:02",
            "port": "gre-ip:10.1.0.11",
            "tunnel": "10.2.0.2",
            "age": 12.25,
        }

    def test_daemon_error_exit_1(self, daemon_socket, capsys):
        assert roamctl.main(["--socket", str(daemon_socket), "peers"]) == 1
        assert "daemon error: request 'peers' failed" in capsys.readouterr().err

    def test_missing_socket(self, tmp_path, capsys):
        assert roamctl.main(["--socket", str(tmp_path / "none.sock"), "fdb"]) == 1
        error = capsys.readouterr().err
        assert "not found" in error
        assert "none.sock" in error

    def test_refused_socket(self, tmp_path, capsys):
        path = tmp_path / "stale.sock"
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        stale.close()
        assert roamctl.main(["--socket", str(path), "fdb"]) == 1
        assert "refused" in capsys.readouterr().err

    def test_silent_daemon_times_out(self, tmp_path, capsys):
        path = tmp_path / "silent.sock"
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(str(path))
        silent.listen(1)
        try:
            assert roamctl.main(["--socket", str(path), "--timeout", "0.2", "fdb"]) == 1
        finally:
            silent.close()
        assert "no reply" in capsys.readouterr().err

    def test_socket_from_config(self, tmp_path, daemon_socket):
        from tests.daemons.test_config import MINIMAL_AP

        config_path = tmp_path / "ap.toml"
        config_path.write_text(MINIMAL_AP + f'[roamctl]\nsocket = "{daemon_socket}"\n')
        out = io.StringIO()
        assert roamctl.main(["--config", str(config_path), "counters"], stdout=out) == 0
        assert out.getvalue().splitlines()[2].split() == ["frames", "3"]

    def test_invalid_config_named(self, tmp_path, capsys):
        config_path = tmp_path / "bad.toml"
        config_path.write_text("[node]\nname = 1\n")
        assert roamctl.main(["--config", str(config_path), "fdb"]) == 1
        error = capsys.readouterr().err
        assert "invalid configuration file" in error
        assert "node.name" in error

    def test_no_socket_is_usage_error(self, capsys):
        with pytest.raises(SystemExit) as caught:
            roamctl.main(["fdb"])
        assert caught.value.code == 2
        assert "--socket" in capsys.readouterr().err

    def test_unknown_request_is_usage_error(self, capsys):
        with pytest.raises(SystemExit) as caught:
            roamctl.main(["--socket", "/x", "routes"])
        assert caught.value.code == 2

    @pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf", "soon"])
    def test_invalid_timeout_is_usage_error(self, timeout, capsys):
        with pytest.raises(SystemExit) as caught:
            roamctl.main(["--socket", "/x", "--timeout", timeout, "fdb"])
        assert caught.value.code == 2
        error = capsys.readouterr().err
        assert "--timeout" in error
        assert "Traceback" not in error


class TestHelpColumns:
    """
    The help text of each request lists the columns its view returns.
    """

    def test_help_matches_view_columns(self, tmp_path):
        from roaming.tap import views
        from tests.daemons.test_services import TestAPService

        service, _reactor, _devices = TestAPService().start(tmp_path)
        tables = views.make_views(service)
        for name in ("fdb", "l3", "tunnels", "peers"):
            described = roamctl.REQUESTS[name].split(":", 1)[1].lower()
            for column in tables[name]().columns:
                words = column.replace("_", " ")
                # "frames_sent" and "frames_received" are listed together.
                first = words.split()[-1] if words.startswith("frames") else words
                assert first in described, (name, column)
