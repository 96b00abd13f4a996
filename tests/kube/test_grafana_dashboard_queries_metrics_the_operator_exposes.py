"""Every expression of the chart's Grafana dashboard queries only series the operator exposes: the directive
service's families, the Routine store's and the WorkerPool controller's, as an operator process declares them."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.chart import rendering
from workpath_operator.kube import pooling, pools, recording, routine_store, settings
from workpath_operator.service import authenticating, measures, serving

DASHBOARD = rendering.CHART / "dashboards" / "workpath.json"
SUFFIXES = {
    measures.Kind.COUNTER: ("",),
    measures.Kind.GAUGE: ("",),
    measures.Kind.HISTOGRAM: ("_bucket", "_sum", "_count"),
}


async def exposed() -> dict[str, set[str]]:
    """The series names an operator with WorkerPools exposes, and their label names."""
    operator_settings = settings.OperatorSettings(token="t", namespaces=("default",))
    client: Any = object()  # nothing here calls the API
    store = routine_store.RoutineStore(client, settings=operator_settings, on_vanished=lambda *_: None)
    service = serving.DirectiveService(
        settings=operator_settings, store=store, authenticator=authenticating.SharedTokenAuthenticator("t")
    )
    controller = pooling.PoolController(
        client,
        fleet=client,
        recorder=recording.EventRecorder(client, rate=1, burst=1),
        connection=pools.WorkerConnection(url="ws://workpath:7740/v1/workers", token_audience="workpath"),
    )
    controller.add_measures(service.measures)
    names: dict[str, set[str]] = {}
    for family in service.measures:
        for suffix in SUFFIXES[family.kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = set(family.labels) | extra
    return names


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    found += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return found


async def test_every_expression_names_exposed_series_and_labels() -> None:
    names = await exposed()
    queried: set[str] = set()
    for expr in expressions():
        series = set(re.findall(r"\bworkpath_[a-z_]+\b", expr))
        assert series, f"no workpath series in {expr!r}"
        assert series <= names.keys(), f"{expr!r} queries {sorted(series - names.keys())}, which nothing exposes"
        queried |= series
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            labels = {label.strip() for label in group.split(",")}
            known = set().union(*(names[s] for s in series))
            assert labels <= known, f"{expr!r} groups by {sorted(labels - known)}, which its series do not have"
    # The dashboard shows each family the issue asks for.
    wanted = {
        "workpath_dispatch_latency_seconds_bucket",
        "workpath_run_duration_seconds_bucket",
        "workpath_status_write_latency_seconds_bucket",
        "workpath_runs_finished_total",
        "workpath_directive_errors_total",
        "workpath_limit_breaches_total",
        "workpath_scaling_decisions_total",
        "workpath_queue_depth",
        "workpath_workers_connected",
        "workpath_worker_slots_busy",
        "workpath_events_posted_total",
    }
    assert wanted <= queried
