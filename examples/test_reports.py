"""The report example, unit-tested with ``workpath.testing``: no service, no worker."""

from __future__ import annotations

import asyncio
import logging

import pytest

import workpath
from examples import reports
from workpath import testing


async def test_a_report_sums_its_parts_run_in_process() -> None:
    env = testing.RoutineEnvironment([reports])
    run = env.start(reports.build, month="2026-10", parts=3)
    report = await run.result()
    parts = [request.run.outcome.result for request in env.requests if request.run.outcome is not None]
    assert [part["n"] for part in parts] == [0, 1, 2]
    assert report == {"month": "2026-10", "parts": 3, "rows": sum(part["rows"] for part in parts)}
    assert [(line.message, dict(line.fields)) for line in run.logs] == [
        ("building report", {"month": "2026-10", "parts": 3}),
        ("report built", {"rows": report["rows"]}),
    ]


async def test_a_report_built_from_stubbed_parts() -> None:
    env = testing.RoutineEnvironment(stubs={"reports.part": lambda month, n: {"n": n, "rows": 10}})
    assert await env.run(reports.build, month="2026-10") == {"month": "2026-10", "parts": 4, "rows": 40}
    assert [dict(request.params) for request in env.requests] == [{"month": "2026-10", "n": n} for n in range(4)]


async def test_a_failed_part_fails_the_report() -> None:
    env = testing.RoutineEnvironment(stubs={"reports.part": workpath.TemporaryError("storage is busy", delay=30)})
    with pytest.raises(testing.RunFailedError, match=r"TemporaryError: storage is busy") as caught:
        await env.run(reports.build, month="2026-10", parts=1)
    assert caught.value.type == "RoutineFailedError"
    assert caught.value.retryable  # the part's failure was retryable, so the report's is too


def test_a_part_is_the_same_for_the_same_month_and_number() -> None:
    env = testing.RoutineEnvironment()
    first = env.run_sync(reports.part, month="2026-10", n=1)
    assert first == env.run_sync(reports.part, month="2026-10", n=1)
    assert 100 <= first["rows"] < 356


def test_an_archive_runs_for_its_seconds_in_steps() -> None:
    env = testing.RoutineEnvironment()
    assert env.run_sync(reports.archive, month="2026-10", seconds=0.05) == {
        "month": "2026-10",
        "steps": 1,
        "archived": True,
    }


class _Heard(logging.Handler):
    """Sets ``event`` (thread-safely) when a log record has ``text`` in its message."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.event, self.loop = text, asyncio.Event(), asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.loop.call_soon_threadsafe(self.event.set)


async def test_a_cancelled_archive_stops_at_its_next_step() -> None:
    env = testing.RoutineEnvironment()
    stopped = _Heard("archiving stopped")
    logging.getLogger("workpath").addHandler(stopped)
    try:
        run = env.start(reports.archive, month="2026-10", seconds=60)
        assert run.cancel()
        outcome = await asyncio.wait_for(run.wait(), timeout=reports.STEP_SECONDS * 4)
        assert outcome.cancelled
        # The outcome is decided at once; the thread goes on until its next step, then stops (its last line goes
        # to Python's logging only: a cancelled run's log takes no more lines).
        await asyncio.wait_for(stopped.event.wait(), timeout=reports.STEP_SECONDS * 4)
    finally:
        logging.getLogger("workpath").removeHandler(stopped)
