"""The directive service's own families on its :class:`~.measures.Board`: the dispatcher's queue, workers and
runs, the limits' breaches, the directives refused.

Gauges are read from the dispatcher when scraped: a queue's length per pool is a counter the pools' demand keeps
anyway, and the workers' slots are a pass over the connected workers (not over the runs).
"""

from __future__ import annotations

import collections
from collections.abc import Callable

from workpath import directives
from workpath_operator.service import dispatching, limiting, measures, sessions

GAUGE, COUNTER, HISTOGRAM = measures.Kind.GAUGE, measures.Kind.COUNTER, measures.Kind.HISTOGRAM


def add_dispatcher(board: measures.Board, dispatcher: Callable[[], dispatching.Dispatcher]) -> None:
    """The families of the service's current ``dispatcher()``: queue depth, workers and slots (by pool), runs
    active and finished, breaches, latencies and durations."""
    board.add(
        "workpath_queue_depth",
        "Runs waiting for a worker, by the declared WorkerPool they count toward (empty: none).",
        kind=GAUGE,
        read=lambda: queue_depths(dispatcher()),
        labels=("pool",),
    )
    workers = "Connected workers, by the pool they announced."
    board.add("workpath_workers_connected", workers, kind=GAUGE, read=_per_pool(dispatcher, _one), labels=("pool",))
    slots = "Slots of the connected workers, by pool."
    board.add("workpath_worker_slots", slots, kind=GAUGE, read=_per_pool(dispatcher, _slots), labels=("pool",))
    busy = "Slots of the connected workers that runs hold, by pool."
    board.add("workpath_worker_slots_busy", busy, kind=GAUGE, read=_per_pool(dispatcher, _busy), labels=("pool",))
    board.add("workpath_runs_active", "Runs not finished.", kind=GAUGE, read=lambda: {(): len(dispatcher().runs)})
    board.add(
        "workpath_limit_breaches_total",
        "Breaches of the limits on what one caller can cost, by limit (refused, cut or dropped).",
        kind=COUNTER,
        read=lambda: {limit: dispatcher().breaches[limit] for limit in limiting.Limit},
        labels=("limit",),
    )
    _add_runs(board, lambda: dispatcher().measures)


def _add_runs(board: measures.Board, runs: Callable[[], measures.RunMeasures]) -> None:
    board.add(
        "workpath_dispatch_latency_seconds",
        "Queued to dispatched (the start sent to a worker), per attempt.",
        kind=HISTOGRAM,
        read=lambda: {(): runs().dispatch_latency},
    )
    board.add(
        "workpath_run_duration_seconds",
        "Started to completed (the worker's clock) of the runs that started, by the phase they ended in.",
        kind=HISTOGRAM,
        read=lambda: runs().durations,
        labels=("phase",),
    )
    board.add(
        "workpath_runs_finished_total",
        "Runs finished, by phase.",
        kind=COUNTER,
        read=lambda: runs().finished,
        labels=("phase",),
    )


def directive_errors(board: measures.Board) -> collections.Counter[measures.LabelValues]:
    """The counter of directives answered with ``v1.error``, by code (every code shown, from 0)."""
    counts = board.counter(
        "workpath_directive_errors_total", "Directives answered with v1.error, by code.", labels=("code",)
    )
    counts.update(dict.fromkeys(((str(code),) for code in directives.ErrorCode), 0))
    return counts


def queue_depths(dispatcher: dispatching.Dispatcher) -> dict[measures.LabelValues, float]:
    """Queued runs by the declared pool they count toward; ``""``: those no declared pool serves."""
    demand = dispatcher.matcher.demand
    depths: dict[measures.LabelValues, float] = {(pool,): demand.queued(pool) for pool in demand.pools}
    depths[("",)] = dispatcher.queue_depth() - sum(depths.values())
    return depths


def _per_pool(
    dispatcher: Callable[[], dispatching.Dispatcher], value: Callable[[sessions.WorkerSession], int]
) -> Callable[[], dict[measures.LabelValues, float]]:
    def read() -> dict[measures.LabelValues, float]:
        totals: collections.Counter[measures.LabelValues] = collections.Counter()
        for session in dispatcher().workers():
            if session.connected:
                totals[(session.pool,)] += value(session)
        return dict(totals)

    return read


def _one(session: sessions.WorkerSession) -> int:
    return 1


def _slots(session: sessions.WorkerSession) -> int:
    return session.slots


def _busy(session: sessions.WorkerSession) -> int:
    return session.busy
