# -*- test-case-name: tests.daemons.test_config_checks -*-
"""
Tests for the checks of L{roaming.config} that catch, before a daemon
opens anything, the values that used to fail only at start: addresses that
are not unicast, a default route as a subnet, timers too short to hold,
interfaces used twice, and files that exist but cannot be used.
"""

import os
import socket

import pytest

from roaming import config
from roaming.config import ConfigError
from tests.daemons.test_config import MINIMAL_AP, MINIMAL_SC, problems_of, replace

REJECTIONS = [
    ("sc", MINIMAL_SC, ('primary = "10.1.0.2"', 'primary = "0.0.0.0"'), "control.primary"),
    ("sc", MINIMAL_SC, ('primary = "10.1.0.2"', 'primary = "224.0.0.5"'), "control.primary"),
    (
        "ap",
        MINIMAL_AP,
        ('controller = "10.1.0.2"', 'controller = "255.255.255.255"'),
        "control.controller",
    ),
    ("sc", MINIMAL_SC, ('address = "10.1.0.2"', 'address = "224.0.0.5"'), "node.address"),
    ("sc", MINIMAL_SC, ('address = "10.1.0.2"', 'address = "127.0.0.1"'), "node.address"),
    ("sc", MINIMAL_SC, ('address = "10.1.0.2"', 'address = "10.1.0.255"'), "node.address"),
    ("sc", MINIMAL_SC, "[[subnet]]\nnetwork = '0.0.0.0/0'\n", "subnet[0].network"),
    ("sc", MINIMAL_SC, "[gre]\nkeepalive_interval = 0.000001\n", "gre.keepalive_interval"),
    ("sc", MINIMAL_SC, "[bridge]\naging_time = 0.5\n", "bridge.aging_time"),
    ("ap", MINIMAL_AP, ("prefix = 24", 'prefix = 24\ninterface = "eth0"'), "node.interface"),
    ("ap", MINIMAL_AP, ("prefix = 24", 'prefix = 24\ninterface = "wlan0"'), "node.interface"),
    ("sc", MINIMAL_SC, "[metrics]\nlisten = '0.0.0.0:7443'\n", "metrics.listen"),
    ("sc", MINIMAL_SC, "[metrics]\nlisten = '10.1.0.2:7443'\n", "metrics.listen"),
]


@pytest.mark.parametrize(
    ("role", "base", "change", "key"),
    REJECTIONS,
    ids=[f"{case[3]}-{index}" for index, case in enumerate(REJECTIONS)],
)
def test_rejected_at_check_time(role, base, change, key):
    text = replace(base, *change) if isinstance(change, tuple) else base + change
    keys = [found_key for found_key, _reason in problems_of(text, role)]
    assert keys == [key]


def test_empty_vsc_array_rejected():
    """
    An AP configured with C{vsc = []} has no VSC to serve, so the file is
    rejected like one without any C{[[vsc]]}.
    """
    without_vsc = replace(MINIMAL_AP, '[[vsc]]\nid = 1\nname = "staff"\n', "")
    problems = problems_of("vsc = []\n" + without_vsc, "ap")
    assert problems == [("vsc", "missing required section: an AP needs at least one [[vsc]]")]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("keepalive_interval", "0.000001"),
        ("handshake_timeout", "0.01"),
        ("reconnect_initial", "0.001"),
    ],
)
def test_short_control_timer_rejected(key, value):
    text = replace(MINIMAL_SC, 'primary = "10.1.0.2"', f'primary = "10.1.0.2"\n{key} = {value}')
    ((found_key, reason),) = problems_of(text, "sc")
    assert found_key == f"control.{key}"
    assert "expected at least" in reason


def test_multicast_address_names_address():
    text = replace(MINIMAL_SC, 'address = "10.1.0.2"', 'address = "224.0.0.5"')
    text = replace(text, "prefix = 24", 'prefix = 24\ngateway = "10.1.0.1"')
    found = problems_of(text, "sc")
    assert [key for key, _ in found] == ["node.address"]
    assert "multicast" in found[0][1]


def test_metrics_on_other_port_accepted():
    loaded = config.parse(MINIMAL_SC + "[metrics]\nlisten = '0.0.0.0:9380'\n", "sc", "/x.toml")
    assert loaded.metrics.port == 9380


def test_metrics_on_control_port_of_ap_accepted():
    # An AP does not listen for control connections.
    loaded = config.parse(MINIMAL_AP + "[metrics]\nlisten = '0.0.0.0:7443'\n", "ap", "/x.toml")
    assert loaded.metrics.port == 7443


def write_tls(directory):
    for name in ("ca.pem", "sc1.pem", "sc1.key"):
        (directory / name).write_text("x")


def checked(directory, text):
    """
    Run L{config.check_files} on C{text} saved in C{directory}; return the
    problems as C{(key, reason)} pairs.
    """
    text += f"[roamctl]\nsocket = '{directory}/run/sc1.sock'\n"
    loaded = config.parse(text, "sc", directory / "sc.toml")
    try:
        config.check_files(loaded)
    except ConfigError as error:
        return [(problem.key, problem.reason) for problem in error.problems]
    return []


class TestCheckFiles:
    """
    L{config.check_files} names the key of each file that exists but
    cannot be used.
    """

    def test_valid_files_pass(self, tmp_path):
        write_tls(tmp_path)
        text = replace(MINIMAL_SC, 'path = ":memory:"', 'path = "db/clients.sqlite"')
        (tmp_path / "db").mkdir()
        assert checked(tmp_path, text) == []

    def test_tls_directory_not_regular(self, tmp_path):
        write_tls(tmp_path)
        (tmp_path / "sc1.pem").unlink()
        (tmp_path / "sc1.pem").mkdir()
        ((key, reason),) = checked(tmp_path, MINIMAL_SC)
        assert key == "tls.certificate"
        assert "not a regular file" in reason
        assert "a directory" in reason

    def test_tls_fifo_not_regular(self, tmp_path):
        write_tls(tmp_path)
        (tmp_path / "ca.pem").unlink()
        os.mkfifo(tmp_path / "ca.pem")
        ((key, reason),) = checked(tmp_path, MINIMAL_SC)
        assert key == "tls.ca"
        assert "not a regular file" in reason
        assert "a FIFO" in reason

    def test_tls_device_not_regular(self, tmp_path):
        write_tls(tmp_path)
        text = replace(MINIMAL_SC, 'key = "sc1.key"', 'key = "/dev/null"')
        ((key, reason),) = checked(tmp_path, text)
        assert key == "tls.key"
        assert "a device" in reason

    def test_database_directory_missing(self, tmp_path):
        write_tls(tmp_path)
        text = replace(MINIMAL_SC, 'path = ":memory:"', 'path = "absent/clients.sqlite"')
        ((key, reason),) = checked(tmp_path, text)
        assert key == "database.path"
        assert "not found" in reason

    def test_database_is_directory(self, tmp_path):
        write_tls(tmp_path)
        (tmp_path / "clients.sqlite").mkdir()
        text = replace(MINIMAL_SC, 'path = ":memory:"', 'path = "clients.sqlite"')
        ((key, reason),) = checked(tmp_path, text)
        assert key == "database.path"
        assert "a directory" in reason

    def test_database_not_sqlite(self, tmp_path):
        write_tls(tmp_path)
        (tmp_path / "clients.sqlite").write_text("not a database at all")
        text = replace(MINIMAL_SC, 'path = ":memory:"', 'path = "clients.sqlite"')
        ((key, reason),) = checked(tmp_path, text)
        assert key == "database.path"
        assert "not an SQLite database" in reason

    def test_database_from_sqlite_accepted(self, tmp_path):
        import sqlite3

        write_tls(tmp_path)
        database = sqlite3.connect(tmp_path / "clients.sqlite")
        database.execute("create table t (x)")
        database.commit()
        database.close()
        text = replace(MINIMAL_SC, 'path = ":memory:"', 'path = "clients.sqlite"')
        assert checked(tmp_path, text) == []

    def test_socket_path_is_directory(self, tmp_path):
        write_tls(tmp_path)
        (tmp_path / "api").mkdir()
        text = MINIMAL_SC + f"[roamctl]\nsocket = '{tmp_path}/api'\n"
        loaded = config.parse(text, "sc", tmp_path / "sc.toml")
        with pytest.raises(ConfigError) as caught:
            config.check_files(loaded)
        (problem,) = caught.value.problems
        assert problem.key == "roamctl.socket"
        assert "is a directory" in problem.reason

    def test_socket_under_proc(self, tmp_path):
        write_tls(tmp_path)
        text = MINIMAL_SC + "[roamctl]\nsocket = '/proc/roaming/sc1.sock'\n"
        loaded = config.parse(text, "sc", tmp_path / "sc.toml")
        with pytest.raises(ConfigError) as caught:
            config.check_files(loaded)
        (problem,) = caught.value.problems
        assert problem.key == "roamctl.socket"
        assert "not writable" in problem.reason

    def test_socket_parent_is_file(self, tmp_path):
        write_tls(tmp_path)
        (tmp_path / "run").write_text("")
        text = MINIMAL_SC + f"[roamctl]\nsocket = '{tmp_path}/run/x/sc1.sock'\n"
        loaded = config.parse(text, "sc", tmp_path / "sc.toml")
        with pytest.raises(ConfigError) as caught:
            config.check_files(loaded)
        (problem,) = caught.value.problems
        assert problem.key == "roamctl.socket"
        assert "not a directory" in problem.reason


def test_unix_socket_unaffected(tmp_path):
    # A socket file left by a previous run is replaced at start, not rejected.
    write_tls(tmp_path)
    (tmp_path / "run").mkdir()
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(tmp_path / "run" / "sc1.sock"))
    assert checked(tmp_path, MINIMAL_SC) == []


def test_examples_name_pki_output(tmp_path):
    from roaming.control import pki
    from tests.daemons.test_config import ETC

    directory = tmp_path / "pki"
    assert pki.main(["create-ca", "--dir", str(directory)]) == 0
    for role, name, address in (("sc", "sc1", "10.1.0.2"), ("ap", "ap1", "10.1.0.11")):
        issue = ["issue", "--ca-dir", str(directory), "--name", name, "--ip", address]
        assert pki.main(issue) == 0
        example = tmp_path / f"roaming-{role}.toml"
        example.write_text((ETC / f"roaming-{role}.toml").read_text())
        loaded = config.load(example, role)
        for key in ("ca", "certificate", "key"):
            assert getattr(loaded.tls, key).is_file(), (role, key)
