"""``GET /metrics``: the service's :class:`~.measures.Board` in Prometheus' formats, through prometheus-client.

Each service has its own registry (never the library's global one: a process may run several services, as the
tests do), holding one collector that turns the board's families into prometheus-client's metric families at
scrape time: counters and gauges as read, histograms from their bucket counts (made cumulative here; nothing
is sorted). The format follows the scraper's ``Accept`` header (the text format, or OpenMetrics).

prometheus-client comes with the ``operator`` extra: the directive service imports this module on the first
scrape, so ``workpath dev`` runs without it (and says what to install when ``/metrics`` is asked for).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import prometheus_client
import prometheus_client.core
import prometheus_client.exposition
import prometheus_client.registry

from workpath_operator.service import measures

_Plain = prometheus_client.core.CounterMetricFamily | prometheus_client.core.GaugeMetricFamily


class Exposition:
    """A service's registry and how to write it out."""

    def __init__(self, board: measures.Board) -> None:
        self.registry = prometheus_client.CollectorRegistry(auto_describe=False)
        self.registry.register(BoardCollector(board))

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The page for a scraper that sent ``accept``, and its content type."""
        encoder, content_type = prometheus_client.exposition.choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def text(self) -> str:
        """The page in the Prometheus text format."""
        return prometheus_client.generate_latest(self.registry).decode()


class BoardCollector(prometheus_client.registry.Collector):
    """Reads the board's families when the registry is collected."""

    def __init__(self, board: measures.Board) -> None:
        self._board = board

    def collect(self) -> Iterator[prometheus_client.core.Metric]:
        for family in self._board:
            yield _family(family)

    def describe(self) -> Iterable[prometheus_client.core.Metric]:
        """The families without their values (the registry checks names against other collectors')."""
        return [_empty(family) for family in self._board]


def _family(family: measures.Family) -> prometheus_client.core.Metric:
    metric = _empty(family)
    for read in family.reads:
        for key, value in read().items():
            labels = [str(key)] if isinstance(key, str) else [str(v) for v in key]
            if isinstance(value, measures.Histogram):
                assert isinstance(metric, prometheus_client.core.HistogramMetricFamily)
                metric.add_metric(labels, _buckets(value), value.sum)
            else:
                assert isinstance(metric, _Plain)
                metric.add_metric(labels, value)
    return metric


def _empty(family: measures.Family) -> prometheus_client.core.Metric:
    labels = list(family.labels)
    if family.kind is measures.Kind.HISTOGRAM:
        return prometheus_client.core.HistogramMetricFamily(family.name, family.help, labels=labels)
    if family.kind is measures.Kind.COUNTER:
        return prometheus_client.core.CounterMetricFamily(family.name, family.help, labels=labels)
    return prometheus_client.core.GaugeMetricFamily(family.name, family.help, labels=labels)


def _buckets(histogram: measures.Histogram) -> list[tuple[str, float]]:
    """Cumulative counts by upper bound, ``+Inf`` last."""
    buckets, total = [], 0
    for bound, count in zip((*histogram.bounds, math.inf), histogram.counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound == math.inf else repr(bound), float(total)))
    return buckets
