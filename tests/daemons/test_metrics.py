# -*- test-case-name: tests.daemons.test_metrics -*-
"""
Tests for L{roaming.metrics}: samples become Prometheus families, read live
on every scrape, and the endpoint serves the text format.
"""

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.web.test.requesthelper import DummyRequest

from roaming import metrics
from roaming.metrics import GAUGE, Sample


class LiveCounters:
    """
    A sample source whose values change between scrapes.
    """

    def __init__(self):
        self.frames = 0

    def __call__(self):
        return [
            Sample(
                "port_rx_frames",
                self.frames,
                documentation="Frames received",
                labels={"port": "eth0"},
            ),
            Sample("port_rx_frames", 7, documentation="Frames received", labels={"port": "gre"}),
            Sample("fdb_entries", 2, kind=GAUGE, documentation="FDB entries", labels={"vlan": "0"}),
            Sample("clients", 1, kind=GAUGE),
        ]


def parse(registry):
    """
    Parse the registry's exposition with prometheus-client's own parser.
    """
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_counter_family_exported():
    source = LiveCounters()
    source.frames = 5
    families = parse(metrics.make_registry(source, "ap1"))
    family = families["roaming_port_rx_frames"]
    assert family.type == "counter"
    assert family.documentation == "Frames received"
    values = {
        sample.labels["port"]: sample.value
        for sample in family.samples
        if sample.name == "roaming_port_rx_frames_total"
    }
    assert values == {"eth0": 5.0, "gre": 7.0}
    assert all(sample.labels["node"] == "ap1" for sample in family.samples)


def test_gauge_family_exported():
    families = parse(metrics.make_registry(LiveCounters(), "sc1"))
    family = families["roaming_fdb_entries"]
    assert family.type == "gauge"
    (sample,) = family.samples
    assert sample.labels == {"node": "sc1", "vlan": "0"}
    assert sample.value == 2.0


def test_values_read_on_every_scrape():
    source = LiveCounters()
    registry = metrics.make_registry(source, "ap1")
    source.frames = 1
    first = generate_latest(registry)
    source.frames = 99
    second = generate_latest(registry)
    assert b'port="eth0"} 1.0' in first
    assert b'port="eth0"} 99.0' in second


def test_missing_label_is_empty():
    def source():
        return [Sample("drops", 1, labels={"reason": "runt"}), Sample("drops", 2)]

    families = parse(metrics.make_registry(source, "n"))
    labels = sorted(
        sample.labels["reason"]
        for sample in families["roaming_drops"].samples
        if sample.name.endswith("_total")
    )
    assert labels == ["", "runt"]


def test_no_default_collectors():
    families = parse(metrics.make_registry(lambda: [], "n"))
    assert families == {}


@pytest.mark.parametrize("name", ["bad-name", "9lives", "frames_total", ""])
def test_invalid_metric_name_rejected(name):
    with pytest.raises(ValueError, match="invalid metric name"):
        Sample(name, 1)


def test_invalid_label_rejected():
    with pytest.raises(ValueError, match="invalid label name '__x'"):
        Sample("frames", 1, labels={"__x": "1"})


def test_invalid_kind_rejected():
    with pytest.raises(ValueError):
        Sample("frames", 1, kind="histogram")


def test_exported_name():
    assert Sample("frames", 1).exported_name == "roaming_frames_total"
    assert Sample("clients", 1, kind=GAUGE).exported_name == "roaming_clients"


def test_resource_renders_text_format():
    source = LiveCounters()
    source.frames = 3
    root = metrics.metrics_site_resource(metrics.make_registry(source, "ap1"))
    request = DummyRequest([b"metrics"])
    resource = root.getChildWithDefault(b"metrics", request)
    body = resource.render_GET(request)
    assert request.responseHeaders.getRawHeaders(b"content-type") == [CONTENT_TYPE_LATEST.encode()]
    assert b'roaming_port_rx_frames_total{node="ap1",port="eth0"} 3.0' in body


def test_control_rejections_exported_by_reason():
    """
    TLS rejections and AMP framing errors on control connections become
    counters labelled by reason.
    """
    from types import SimpleNamespace

    from roaming.control.protocol import ConnectionCounters
    from roaming.control.tls import TLSCounters
    from roaming.tap import views

    counters = ConnectionCounters()
    counters.tls_rejected["no-certificate"] += 2
    counters.protocol_errors["unknown-answer"] += 1
    control = SimpleNamespace(
        counters=counters,
        tls_counters=TLSCounters(),
        messages_dropped=0,
        action_errors=0,
        datapath=SimpleNamespace(static_errors=0),
        peers={},
    )
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in views._control_samples(control)
    }
    assert found[("control_tls_rejected", (("reason", "no-certificate"),))] == 2
    assert found[("control_protocol_errors", (("reason", "unknown-answer"),))] == 1
