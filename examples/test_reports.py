"""The report example, unit-tested with ``workpath.testing``: no service, no worker."""

from __future__ import annotations

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
