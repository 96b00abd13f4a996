"""Under ``workpath.v1.batches`` a run's ``starting`` waits for the connection's writer: a run that ends before it is
written sends no ``starting``, its final report carries the run's ``started_at`` instead. A run still going when the
writer writes reports its start on its own, as does every run on a connection without batches.

A parent learns of a sub-routine's start the same way: from a forwarded final report that carries the child's run ID,
worker ID and start time when no forwarded ``starting`` came.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from typing import Any

import pytest

import workpath
from tests.worker import fakes
from workpath import directives, working

RunID = directives.RunID
#: The gate each run of ``unit.gated`` waits on, by run ID; the test opens it.
gates: dict[str, asyncio.Event] = {}


@workpath.routine("unit.quick")
async def quick(ctx: workpath.Context) -> str:
    return "done at once"


@workpath.routine("unit.broken")
async def broken(ctx: workpath.Context) -> None:
    raise ValueError("broken at once")


@workpath.routine("unit.gated")
async def gated(ctx: workpath.Context) -> str:
    await gates[ctx.run_id].wait()
    return "opened"


@workpath.routine("unit.caller")
async def caller(ctx: workpath.Context) -> list[tuple[str | None, str | None, str | None]]:
    with contextlib.suppress(workpath.RoutineFailedError):  # a failed child is known all the same
        await ctx.call("unit.child")
    return [
        (call.run_id, call.worker_id, call.started_at.isoformat() if call.started_at else None)
        for call in ctx.subroutines
    ]


ROUTINES: list[workpath.RoutineDefinition[..., Any]] = [quick, broken, gated, caller]
#: What a parent may send around its request: its own start goes out whenever the writer next writes.
PARENT_NOISE = (directives.Log, directives.GivePulse, directives.RoutineStarting)


async def test_a_run_that_returns_at_once_sends_only_its_completed_with_its_start() -> None:
    async with (
        fakes.fake_service(batches=True) as service,
        fakes.running(working.Worker(fakes.worker_settings(service), ROUTINES)),
    ):
        connection = await service.next_connection()
        assert connection.ws.ws_protocol == directives.BATCHES
        await connection.expect(directives.Ready)
        before = directives.now()
        await connection.send(fakes.start("unit.quick", "run-1"))
        completed = await connection.expect(directives.RoutineCompleted)  # a RoutineStarting first would fail here
        assert (completed.run_id, completed.result) == ("run-1", "done at once")
        assert completed.started_at is not None
        assert before <= completed.started_at <= completed.completed_at
        await connection.pulse()  # nor does a starting come after it
        assert connection.frames.empty()


async def test_a_run_that_fails_at_once_sends_only_its_failed_with_its_start() -> None:
    async with (
        fakes.fake_service(batches=True) as service,
        fakes.running(working.Worker(fakes.worker_settings(service), ROUTINES)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        before = directives.now()
        await connection.send(fakes.start("unit.broken", "run-1"))
        failed = await connection.expect(directives.RoutineFailed)
        assert (failed.run_id, failed.error.type, failed.error.message) == ("run-1", "ValueError", "broken at once")
        assert failed.started_at is not None
        assert before <= failed.started_at <= failed.completed_at
        await connection.pulse()
        assert connection.frames.empty()


async def test_a_run_still_going_when_the_writer_writes_reports_its_start_on_its_own() -> None:
    gates["run-1"] = asyncio.Event()
    try:
        async with (
            fakes.fake_service(batches=True) as service,
            fakes.running(working.Worker(fakes.worker_settings(service), ROUTINES)),
        ):
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.gated", "run-1"))
            starting = await connection.expect(directives.RoutineStarting)
            assert (starting.run_id, starting.worker_id) == ("run-1", "unit-worker")
            gates["run-1"].set()
            completed = await connection.expect(directives.RoutineCompleted)
            assert (completed.run_id, completed.result) == ("run-1", "opened")
            assert completed.started_at is None
            assert starting.started_at <= completed.completed_at
    finally:
        del gates["run-1"]


async def test_without_batches_even_a_quick_run_reports_its_start_on_its_own() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), ROUTINES)),
    ):
        connection = await service.next_connection()
        assert connection.ws.ws_protocol is None
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.quick", "run-1"))
        starting = await connection.expect(directives.RoutineStarting)
        completed = await connection.expect(directives.RoutineCompleted)
        assert (starting.run_id, completed.run_id) == ("run-1", "run-1")
        assert completed.started_at is None
        assert starting.started_at <= completed.completed_at


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_a_parent_learns_its_childs_start_from_a_final_report_that_carries_it(outcome: str) -> None:
    child_started = directives.now() - datetime.timedelta(seconds=2)
    async with (
        fakes.fake_service(batches=True) as service,
        fakes.running(working.Worker(fakes.worker_settings(service), ROUTINES)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.caller", "run-1"))
        request = await connection.expect(directives.RequestSubroutine, skip=PARENT_NOISE)
        final: directives.Payload
        if outcome == "completed":
            final = directives.RoutineCompleted(
                run_id=RunID("child-1"),
                request_id=request.request_id,
                result="from the child",
                completed_at=directives.now(),
                started_at=child_started,
                worker_id=directives.WorkerID("other-worker"),
            )
        else:
            final = directives.RoutineFailed(
                run_id=RunID("child-1"),
                request_id=request.request_id,
                error=directives.ErrorInfo(type="ValueError", message="bad child"),
                completed_at=directives.now(),
                started_at=child_started,
                worker_id=directives.WorkerID("other-worker"),
            )
        await connection.send(final)  # no forwarded starting came before it
        completed = await connection.expect(directives.RoutineCompleted, skip=PARENT_NOISE)
    assert completed.run_id == "run-1"
    ((run_id, worker_id, started_at),) = completed.result
    assert (run_id, worker_id) == ("child-1", "other-worker")
    assert datetime.datetime.fromisoformat(started_at) == child_started
