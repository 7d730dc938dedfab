# -*- test-case-name: tests.daemons.test_metrics -*-
"""
Counters and gauges of a running daemon, for roamctl and for Prometheus.

A daemon gathers its numbers in one place: a L{SampleSource} is a callable
that returns L{Sample} objects read from the bridges, ports, tunnels and
control roles at that moment. C{roamctl counters} prints them, and
L{RoamingCollector} exports the same samples through prometheus-client, so
the two views cannot disagree. Nothing is copied into prometheus-client's own
counter objects: the collector reads the live values on every scrape.

The HTTP endpoint (L{MetricsResource}) renders in the reactor thread, unlike
C{prometheus_client.twisted.MetricsResource}, which collects in a thread pool
while the reactor may be changing the same tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import attrs
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.web.resource import Resource
from twisted.web.server import Request

__all__ = [
    "COUNTER",
    "GAUGE",
    "PREFIX",
    "MetricsResource",
    "RoamingCollector",
    "Sample",
    "SampleSource",
    "make_registry",
    "metrics_site_resource",
]

COUNTER = "counter"
GAUGE = "gauge"
PREFIX = "roaming_"

# Prometheus metric and label names (exposition format, "Metric names and labels").
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _check_name(instance: Sample, attribute: attrs.Attribute, value: str) -> None:
    if not _METRIC_NAME.fullmatch(value) or value.endswith("_total"):
        raise ValueError(
            f"invalid metric name {value!r}: expected [a-zA-Z_:][a-zA-Z0-9_:]* "
            "without the _total suffix, which counters get on export"
        )


def _check_labels(instance: Sample, attribute: attrs.Attribute, value: Mapping) -> None:
    for label in value:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"invalid label name {label!r} on metric {instance.name!r}")


@attrs.frozen
class Sample:
    """
    One counter or gauge value with its labels.

    C{name} has no C{roaming_} prefix and no C{_total} suffix: the exporter
    adds both. Every sample of one name must have the same kind and
    documentation.
    """

    name: str = attrs.field(validator=_check_name)
    value: float
    kind: str = attrs.field(default=COUNTER, validator=attrs.validators.in_((COUNTER, GAUGE)))
    documentation: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict, validator=_check_labels)

    @property
    def exported_name(self) -> str:
        """
        Name of the sample in the Prometheus export.
        """
        suffix = "_total" if self.kind == COUNTER else ""
        return f"{PREFIX}{self.name}{suffix}"


SampleSource = Callable[[], Iterable[Sample]]


class RoamingCollector(Collector):
    """
    A prometheus-client collector that reads a L{SampleSource} on every
    scrape and adds C{node} as a label to every sample.
    """

    def __init__(self, source: SampleSource, node: str) -> None:
        self._source = source
        self._node = node

    def collect(self) -> Iterable[Metric]:
        """
        Group the current samples into metric families by name.
        """
        grouped: dict[str, list[Sample]] = {}
        for sample in self._source():
            grouped.setdefault(sample.name, []).append(sample)

        for name, samples in sorted(grouped.items()):
            first = samples[0]
            label_names = sorted({"node", *(key for sample in samples for key in sample.labels)})
            family_class = CounterMetricFamily if first.kind == COUNTER else GaugeMetricFamily
            family = family_class(PREFIX + name, first.documentation or name, labels=label_names)
            for sample in samples:
                labels = {"node": self._node, **sample.labels}
                values = [str(labels.get(label, "")) for label in label_names]
                family.add_metric(values, float(sample.value))
            yield family


def make_registry(source: SampleSource, node: str) -> CollectorRegistry:
    """
    Create a registry holding only the daemon's collector, so that no
    process-wide default metrics leak into the export.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RoamingCollector(source, node))
    return registry


class MetricsResource(Resource):
    """
    C{GET /metrics}: the registry in the Prometheus text format.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        """
        Render the current samples.
        """
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


def metrics_site_resource(registry: CollectorRegistry) -> Resource:
    """
    Build the resource tree of the metrics endpoint: C{/metrics} only.
    """
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry))
    return root
