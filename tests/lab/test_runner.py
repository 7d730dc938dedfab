# -*- test-case-name: tests.lab.test_runner -*-
"""
Tests for the parts of the lab that need no namespaces: the plan, the
scenarios, roam kinds, the command line and the text report.
"""

import io
import itertools

import pytest

from roaming.lab.cli import build_parser, format_report, main
from roaming.lab.runner import roam_kind, scenario_targets
from roaming.lab.topology import LAB_NETWORK, LabError, default_plan

PLAN = default_plan("rmtst-lab-unit", clients=3)


def test_plan_addresses_in_benchmark_range():
    for node in PLAN.nodes:
        assert node.address in LAB_NETWORK, node
    for subnet in PLAN.subnets:
        assert subnet.network.subnet_of(LAB_NETWORK)


def test_plan_names_fit_interfaces():
    for node in PLAN.nodes:
        assert len(node.cell) <= 15


def test_plan_client_homes_alternate():
    assert [client.home_ap for client in PLAN.clients] == ["ap-a1", "ap-a2", "ap-a1"]
    assert len({client.mac for client in PLAN.clients}) == 3


def test_plan_client_limit():
    with pytest.raises(LabError, match="invalid client count 0"):
        default_plan("x", clients=0)


def test_default_tour():
    client = PLAN.clients[0]
    assert scenario_targets(PLAN, client, "default") == ["ap-b1", "ap-b2", "ap-a1", "ap-a2"]


def test_long_tour_has_50_roams():
    assert len(scenario_targets(PLAN, PLAN.clients[1], "long")) >= 50


def test_unknown_scenario():
    with pytest.raises(LabError, match="invalid scenario 'nope'"):
        scenario_targets(PLAN, PLAN.clients[0], "nope")


def test_roam_kinds_of_tour():
    client = PLAN.clients[0]
    hops = [client.home_ap, *scenario_targets(PLAN, client, "default")]
    kinds = [roam_kind(PLAN, client, a, b) for a, b in itertools.pairwise(hops)]
    assert kinds == ["home-to-foreign", "within-foreign", "foreign-to-home", "within-home"]


def test_options_before_and_after_run():
    parser = build_parser()
    assert parser.parse_args(["--clients", "3", "run"]).clients == 3
    assert parser.parse_args(["run", "--rate", "500"]).rate == 500.0
    assert parser.parse_args([]).scenario == "default"


@pytest.mark.parametrize(
    "argv", [["--rate", "0"], ["--clients", "0"], ["--hold", "100"], ["--scenario", "x"]]
)
def test_invalid_options_rejected(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(argv)
    assert raised.value.code == 2


def test_format_report():
    report = {
        "roams": [
            {
                "client": "client-1",
                "from_ap": "ap-a1",
                "to_ap": "ap-b1",
                "kind": "home-to-foreign",
                "interruption_ms": 3.25,
                "lost": 2,
                "sent": 1000,
                "path": ["ap-b1>sc2", "sc2>sc1"],
            },
            {
                "client": "client-1",
                "from_ap": "ap-b1",
                "to_ap": "ap-b2",
                "kind": "within-foreign",
                "interruption_ms": None,
                "lost": 900,
                "sent": 1000,
                "path": [],
            },
        ],
        "summary": {
            "roams": 2,
            "restored": 1,
            "p50_interruption_ms": 3.25,
            "p99_interruption_ms": 3.25,
            "max_interruption_ms": 3.25,
            "lost": 902,
            "sent": 2000,
        },
        "checks": {
            "client-1": {
                "address": "198.18.1.150",
                "kept_address": True,
                "arp_after_flush": True,
                "dhcp_renewal": False,
                "tcp_connection": True,
            }
        },
        "ok": False,
    }
    text = format_report(report)
    assert "3.25 ms" in text
    assert "not restored" in text
    assert "ap-b1>sc2 sc2>sc1" in text
    assert "1/2 roams restored connectivity" in text
    assert "dhcp renewal FAILED" in text
    assert text.endswith("FAIL")


def test_main_without_root(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    errors = io.StringIO()
    monkeypatch.setattr("sys.stderr", errors)
    assert main([], output=io.StringIO()) == 2
    assert "needs root privileges" in errors.getvalue()
