"""What one caller can cost is bounded: a log line over the size limit is cut with a marker, lines over a run's
rate are dropped (and the run's log says how many), a sub-routine request past the open limit or with params over
the size limit fails in the routine at once; every breach is counted in /metrics."""

from __future__ import annotations

import pytest

from tests import scrapes
from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching, limiting, measures, metering, runs, settings, stores


def line(run: runs.Run, message: str = "hello", **fields: object) -> directives.Log:
    return directives.Log(run_id=run.run_id, message=message, time=directives.now(), fields=fields)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock, breaches: limiting.Breaches, *, max_line_bytes: int = 1024) -> limiting.LogGate:
    return limiting.LogGate(max_line_bytes=max_line_bytes, lines_per_second=10, burst=5, breaches=breaches, clock=clock)


def test_lines_over_the_rate_are_dropped_and_the_log_says_how_many() -> None:
    clock, breaches = Clock(), limiting.Breaches()
    gate_ = gate(clock, breaches)
    run = runs.Run(run_id=runs.new_run_id(), spec=fakes.spec(), created_at=directives.now())
    kept = [gate_.admit(run, line(run, f"n={n}"), size=50) for n in range(8)]
    assert [len(k) for k in kept] == [1, 1, 1, 1, 1, 0, 0, 0]  # a burst of 5, then nothing
    assert breaches[limiting.Limit.LOG_RATE] == 3

    clock.now += 0.15  # one and a half lines' worth of tokens at 10 lines/s
    notice, latest = gate_.admit(run, line(run, "after"), size=50)
    assert notice.level == "warning" and "3 log line(s) of this run were dropped" in notice.message
    assert "WORKPATH_LOG_LINES_PER_SECOND" in notice.message
    assert latest.message == "after"
    assert gate_.admit(run, line(run, "over again"), size=50) == []


def test_a_long_line_is_cut_with_a_marker_and_large_fields_dropped() -> None:
    clock, breaches = Clock(), limiting.Breaches()
    gate_ = gate(clock, breaches, max_line_bytes=1024)
    run = runs.Run(run_id=runs.new_run_id(), spec=fakes.spec(), created_at=directives.now())
    entry = line(run, "é" * 3000, blob="x" * 5000, keep=1)
    size = len(directives.encode(entry).encode())
    (cut,) = gate_.admit(run, entry, size=size)
    assert len(directives.encode(cut).encode()) <= 1024
    assert cut.message.startswith("é" * 10)
    assert f"[cut: the line was {size} bytes, its " in cut.message and "WORKPATH_MAX_LOG_LINE_BYTES" in cut.message
    assert cut.fields == {}
    assert breaches[limiting.Limit.LOG_LINE_BYTES] == 1

    small_fields = line(run, "m" * 2000, n=1)
    (kept,) = gate_.admit(run, small_fields, size=len(directives.encode(small_fields).encode()))
    assert kept.fields == {"n": 1} and len(directives.encode(kept).encode()) <= 1024


async def test_log_lines_reach_the_store_within_the_limits() -> None:
    store = stores.MemoryRunStore()
    dispatcher = dispatching.Dispatcher(
        settings=settings.ServiceSettings(log_burst=3, log_lines_per_second=0.001, max_log_line_bytes=512),
        observer=store,
    )
    fleet = fakes.FakeWorkers(dispatcher)
    try:
        worker = fleet.attach("w")
        run = dispatcher.submit(fakes.spec())
        await fleet.starts(worker)
        for n in range(5):
            entry = line(run, f"line {n}" + "!" * (600 if n == 0 else 0))
            fleet.reports.log(worker, entry, size=len(directives.encode(entry)))
        kept = store.logs(run.run_id)
        assert [e.message[:6] for e in kept] == ["line 0", "line 1", "line 2"]
        assert "[cut: the line was" in kept[0].message
        board = measures.Board()
        metering.add_dispatcher(board, lambda: dispatcher)
        values = scrapes.values(scrapes.page(board))
        assert values['workpath_limit_breaches_total{limit="log_rate"}'] == 2
        assert values['workpath_limit_breaches_total{limit="log_line_bytes"}'] == 1
        assert values['workpath_limit_breaches_total{limit="open_subroutines"}'] == 0
    finally:
        await fleet.close()


@pytest.mark.parametrize(
    ("params", "kind", "limit"),
    [
        ({}, limiting.TOO_MANY_SUBROUTINES, limiting.Limit.OPEN_SUBROUTINES),
        ({"blob": "x" * 2000}, limiting.PARAMS_TOO_LARGE, limiting.Limit.PARAMS_BYTES),
    ],
)
async def test_a_sub_routine_past_a_limit_fails_in_the_routine_at_once(
    params: dict[str, object], kind: str, limit: limiting.Limit
) -> None:
    dispatcher = dispatching.Dispatcher(
        settings=settings.ServiceSettings(max_open_subroutines=2, max_params_bytes=1024),
        observer=stores.MemoryRunStore(),
    )
    fleet = fakes.FakeWorkers(dispatcher)
    try:
        worker = fleet.attach("w", slots=1, routines=("parent",))
        parent = dispatcher.submit(fakes.spec("parent"))
        await fleet.starts(worker)
        requests = 2 if kind == limiting.TOO_MANY_SUBROUTINES else 0
        for n in range(requests + 1):
            dispatcher.subroutines.request(
                worker,
                directives.RequestSubroutine(
                    request_id=directives.RequestID(f"r{n}"),
                    routine_id=directives.RoutineID("child"),
                    params=params if n == requests else {},
                    parent_run_id=parent.run_id,
                ),
            )
        (answer,) = [p for p in await fleet.sent(worker) if isinstance(p, directives.RoutineFailed)]
        assert answer.request_id == f"r{requests}"
        assert (answer.error.type, answer.error.retryable) == (kind, False)
        assert "WORKPATH_MAX_" in answer.error.message
        assert parent.children_total == requests and dispatcher.queue_depth() == requests
        assert dispatcher.breaches[limit] == 1
    finally:
        await fleet.close()


def test_params_over_the_limit_are_refused_with_the_limit_and_the_way_out() -> None:
    assert limiting.params_refusal("a.b", {"x": 1}, limit=100) is None
    refusal = limiting.params_refusal("a.b", {"x": "y" * 200}, limit=100)
    assert refusal is not None
    assert "are 208 bytes as JSON; the limit is 100 bytes" in refusal
    assert "WORKPATH_MAX_PARAMS_BYTES" in refusal and "reference" in refusal
