"""The service's metrics in the Prometheus text format (``GET /metrics``).

Gauges of the dispatcher (queue depth, connected workers, runs not finished), the count of directives
refused, a summary of recent dispatch latencies, the breaches of the limits on what one caller can cost
(:mod:`~.limiting`), and whatever the run store counts itself.
"""

from __future__ import annotations

import itertools

from workpath_operator.service import dispatching, stores

_QUANTILES = (0.5, 0.9, 0.99)


def render(dispatcher: dispatching.Dispatcher, *, store: stores.RunStore, directive_errors: int) -> str:
    """The whole ``/metrics`` page."""
    latencies = sorted(dispatcher.dispatch_latencies)
    lines = [
        "# HELP workpath_queue_depth Runs waiting for a worker.",
        "# TYPE workpath_queue_depth gauge",
        f"workpath_queue_depth {dispatcher.queue_depth()}",
        "# HELP workpath_workers_connected Connected workers.",
        "# TYPE workpath_workers_connected gauge",
        f"workpath_workers_connected {sum(1 for s in dispatcher.workers() if s.connected)}",
        "# HELP workpath_runs_active Runs not finished.",
        "# TYPE workpath_runs_active gauge",
        f"workpath_runs_active {len(dispatcher.runs)}",
        "# HELP workpath_directive_errors_total Directives answered with v1.error.",
        "# TYPE workpath_directive_errors_total counter",
        f"workpath_directive_errors_total {directive_errors}",
        "# HELP workpath_dispatch_latency_seconds Queued to dispatched, recent dispatches.",
        "# TYPE workpath_dispatch_latency_seconds summary",
    ]
    for q in _QUANTILES:
        value = latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0
        lines.append(f'workpath_dispatch_latency_seconds{{quantile="{q}"}} {value:.6f}')
    lines.append(f"workpath_dispatch_latency_seconds_count {len(latencies)}")
    described: set[str] = set()
    for name, help_text, value in itertools.chain(dispatcher.breaches.metrics(), store.metrics()):
        family = name.partition("{")[0]
        if family not in described:
            described.add(family)
            kind = "counter" if family.endswith("_total") else "gauge"
            lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
        lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"
