"""What the service counts in plain numbers is exposed as Prometheus families: a histogram's buckets cumulative
(a value on a bound counts in that bucket), counters and gauges as read at scrape time, one family from several
parts' series; a family declared again with another kind or other labels is refused."""

from __future__ import annotations

import pytest

from tests import scrapes
from workpath_operator.service import measures


def test_a_histogram_is_exposed_with_cumulative_buckets() -> None:
    board = measures.Board()
    histogram = measures.Histogram((0.1, 1.0))
    board.add("test_wait_seconds", "Waits.", kind=measures.Kind.HISTOGRAM, read=lambda: {(): histogram})
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)

    values = scrapes.values(scrapes.page(board))
    assert values['test_wait_seconds_bucket{le="0.1"}'] == 2
    assert values['test_wait_seconds_bucket{le="1.0"}'] == 4
    assert values['test_wait_seconds_bucket{le="+Inf"}'] == values["test_wait_seconds_count"] == 5
    assert values["test_wait_seconds_sum"] == pytest.approx(8.65)
    assert histogram.count == 5


def test_values_are_read_when_scraped_and_parts_add_series_to_one_family() -> None:
    board = measures.Board()
    queue = ["a", "b"]
    board.add("test_depth", "Depth.", kind=measures.Kind.GAUGE, read=lambda: {"left": len(queue)}, labels=("side",))
    board.add("test_depth", "Depth.", kind=measures.Kind.GAUGE, read=lambda: {"right": 0}, labels=("side",))
    sent = board.counter("test_sent_total", "Sent.", labels=("kind", "to"))
    sent[("result", "client")] += 3

    queue.append("c")
    values = scrapes.values(scrapes.page(board))
    assert values['test_depth{side="left"}'] == 3
    assert values['test_depth{side="right"}'] == 0
    assert values['test_sent_total{kind="result",to="client"}'] == 3
    assert scrapes.families(scrapes.page(board)) == {"test_depth": "gauge", "test_sent": "counter"}


def test_a_family_declared_again_differently_is_refused() -> None:
    board = measures.Board()
    board.counter("test_runs_total", "Runs.", labels=("phase",))
    with pytest.raises(ValueError, match="test_runs_total"):
        board.add("test_runs_total", "Runs.", kind=measures.Kind.GAUGE, read=dict, labels=("phase",))
    with pytest.raises(ValueError, match="test_runs_total"):
        board.counter("test_runs_total", "Runs.", labels=("pool",))
