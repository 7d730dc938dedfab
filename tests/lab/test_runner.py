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


def test_gre_frames_summed_from_counters():
    from roaming.lab.runner import _gre_frames_sent

    reply = {
        "columns": ["name", "labels", "value"],
        "rows": [
            ["port_tx_frames", "port=gre-ip:198.18.2.11", 40],
            ["port_tx_frames", "port=gre-ip:198.18.2.11", 2],
            ["port_tx_frames", "port=lan0", 1000],
            ["port_rx_frames", "port=gre-ip:198.18.2.11", 7],
        ],
    }
    assert _gre_frames_sent(reply) == 42
    assert _gre_frames_sent({"rows": []}) == 0


def roam_records(run, moves):
    from roaming.lab.runner import RoamRecord

    client = run.plan.clients[0]
    hops = [client.home_ap, *scenario_targets(run.plan, client, "default")]
    return [
        RoamRecord(client, hops[step], hops[step + 1], "x", 0, moved_wall, step)
        for step, moved_wall in enumerate(moves)
    ]


def test_stages_stop_at_next_move(tmp_path):
    from roaming.lab.runner import LabOptions, LabRun

    run = LabRun(LabOptions(), output=io.StringIO())
    run.directory = tmp_path
    run.roams = roam_records(run, [1000.0, 1000.5])
    line = "Roam stage {} for 02:00:00:00:00:01 on {} at {:.6f}\n"
    (tmp_path / "ap-b1.twistd.log").write_text(
        line.format("station-connected", "ap-b1", 1000.001)
        + line.format("first-frame-back", "ap-b1", 1000.004)
        + line.format("station-connected", "ap-b1", 1000.600)
    )
    (tmp_path / "sc2.twistd.log").write_text(line.format("message-received", "sc2", 1000.002))
    run._attach_stages()
    assert run.roams[0].stages_ms == {
        "station-connected@ap-b1": 1.0,
        "first-frame-back@ap-b1": 4.0,
        "message-received@sc2": 2.0,
    }
    # The event 100 ms after the second move belongs to the second roam only.
    assert run.roams[1].stages_ms == {"station-connected@ap-b1": 100.0}


def test_path_lists_tunnel_senders(tmp_path):
    from roaming.lab.runner import LabOptions, LabRun

    run = LabRun(LabOptions(rate=1000.0, hold=1.0), output=io.StringIO())
    run.roams = roam_records(run, [1000.0])
    run.tunnel_snapshots = [
        (0, {"ap-a1": 5, "ap-b1": 0, "sc1": 100, "sc2": 0}),
        (1, {"ap-a1": 6, "ap-b1": 990, "sc1": 1100, "sc2": 1000}),
    ]
    run._attach_paths()
    assert run.roams[0].path == ["ap-b1", "sc1", "sc2"]
