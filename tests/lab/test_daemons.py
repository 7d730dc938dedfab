# -*- test-case-name: tests.lab.test_daemons -*-
"""
Tests for L{roaming.lab.daemons}: the configurations the lab writes pass the
daemons' own configuration checks, and stage log lines are parsed.
"""

import pytest

from roaming import config
from roaming.lab import daemons
from roaming.lab.topology import default_plan

PLAN = default_plan("rmtst-lab-unit", clients=1)


@pytest.mark.parametrize("name", ["sc1", "sc2", "ap-a1", "ap-b2"])
def test_config_accepted(tmp_path, name):
    node = PLAN.node(name)
    path = daemons.write_config(PLAN, node, tmp_path)
    loaded = config.load(path, node.role)
    assert loaded.node.name == name
    assert str(loaded.node.address) == str(node.address)


def test_only_sc1_is_primary(tmp_path):
    for name in ("sc1", "sc2"):
        loaded = config.load(daemons.write_config(PLAN, PLAN.node(name), tmp_path), "sc")
        assert str(loaded.control.primary) == "198.18.1.11"


def test_ap_uses_emulated_radio(tmp_path):
    node = PLAN.node("ap-b1")
    loaded = config.load(daemons.write_config(PLAN, node, tmp_path), "ap")
    assert loaded.radio.kind == "emulated"
    assert loaded.radio.interface == "air0"
    assert str(loaded.radio.control) == str(daemons.radio_socket(tmp_path, node))
    assert str(loaded.control.controller) == "198.18.2.11"


def test_certificates_name_node_addresses(tmp_path):
    from roaming.control import pki

    daemons.write_certificates(PLAN, tmp_path)
    certificate = pki.load_certificate(tmp_path / "ap-a1.crt")
    text = str(certificate.extensions)
    assert "198.18.1.21" in text
    assert (tmp_path / "ca.crt").exists()
    assert not (tmp_path / "router.crt").exists()


def test_config_files_checked(tmp_path):
    daemons.write_certificates(PLAN, tmp_path)
    loaded = config.load(daemons.write_config(PLAN, PLAN.node("sc2"), tmp_path), "sc")
    config.check_files(loaded)


def test_daemon_command_runs_twistd(tmp_path):
    node = PLAN.node("ap-a1")
    command = daemons.daemon_command(node, tmp_path / "ap-a1.toml", tmp_path / "ap-a1.log")
    assert "-n" in command
    assert "--pidfile=" in command
    assert command[-3:] == ["roaming-ap", "--config", str(tmp_path / "ap-a1.toml")]


def test_parse_stage_events():
    text = (
        "2026-12-04T21:00:00+0000 [roaming.stages#info] Roam stage station-connected for "
        "02:00:00:00:00:01 on ap-b1 at 1796418000.123456\n"
        "2026-12-04T21:00:00+0000 [-] unrelated line\n"
        "2026-12-04T21:00:00+0000 [roaming.stages#info] Roam stage roamer-detected for "
        "02:00:00:00:00:01 on sc2 at 1796418000.125000\n"
    )
    events = daemons.parse_stage_events(text)
    assert [event.stage for event in events] == ["station-connected", "roamer-detected"]
    assert events[0].node == "ap-b1"
    assert events[0].mac == "02:00:00:00:00:01"
    assert events[1].timestamp == pytest.approx(1796418000.125)
