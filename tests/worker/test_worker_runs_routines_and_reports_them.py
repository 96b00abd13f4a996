"""The worker runtime against a scripted service: ready, starting, completed/failed, pulses, cancel."""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
from typing import Any

import pytest

import workpath
from tests.worker import fakes
from workpath import directives, routines, working

gate = threading.Event()


@workpath.routine("unit.echo")
async def echo(ctx: workpath.Context, value: Any) -> dict[str, Any]:
    return {"value": value, "run": ctx.run_id, "attempt": ctx.attempt, "worker": ctx.worker_id}


@workpath.routine("unit.blocking")
def blocking(ctx: workpath.Context) -> str:
    ctx.log.info("waiting for the gate")
    gate.wait(10)
    return "opened"


@workpath.routine("unit.sleep")
async def sleep(ctx: workpath.Context, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workpath.routine("unit.fail")
async def fail(ctx: workpath.Context, retryable: bool = False) -> None:
    if retryable:
        raise workpath.TemporaryError("try later", delay=2.5)
    raise ValueError("this input can never work")


DEFINITIONS: list[routines.RoutineDefinition[..., Any]] = [echo, blocking, sleep, fail]


async def test_ready_advertises_the_worker_and_its_routines() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, pool="big", slots=7), DEFINITIONS)
        async with fakes.running(worker):
            connection = await service.next_connection()
            ready = await connection.expect(directives.Ready)
            assert ready.worker_id == "unit-worker"
            assert ready.pool == "big"
            assert ready.slots == 7
            assert sorted(ready.routines) == ["unit.blocking", "unit.echo", "unit.fail", "unit.sleep"]
            assert ready.running == []
            pulse = await connection.pulse()
            assert (pulse.status, pulse.running) == ("idle", [])


async def test_a_run_is_reported_starting_then_completed_with_its_result() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        before = directives.now()
        await connection.send(fakes.start("unit.echo", "run-1", attempt=2, value=[1, 2]))
        starting = await connection.expect(directives.RoutineStarting)
        completed = await connection.expect(directives.RoutineCompleted)
        assert (starting.run_id, starting.attempt, starting.worker_id) == ("run-1", 2, "unit-worker")
        assert starting.request_id is None
        assert (completed.run_id, completed.attempt) == ("run-1", 2)
        assert completed.result == {"value": [1, 2], "run": "run-1", "attempt": 2, "worker": "unit-worker"}
        assert before <= starting.started_at <= completed.completed_at <= directives.now()


async def test_failures_carry_type_message_and_retry_intent() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.fail", "run-1"))
        permanent = await connection.expect(directives.RoutineFailed, skip=(directives.RoutineStarting, directives.Log))
        await connection.send(fakes.start("unit.fail", "run-2", retryable=True))
        temporary = await connection.expect(directives.RoutineFailed, skip=(directives.RoutineStarting, directives.Log))
    assert permanent.error.model_dump() == {
        "type": "ValueError",
        "message": "this input can never work",
        "retryable": False,
        "delay": None,
    }
    assert temporary.error.model_dump() == {
        "type": "TemporaryError",
        "message": "try later",
        "retryable": True,
        "delay": 2.5,
    }


async def test_an_unknown_routine_fails_at_once_not_retryable() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.missing", "run-1"))
        failed = await connection.expect(directives.RoutineFailed)
    assert failed.error.type == "RoutineNotFoundError"
    assert not failed.error.retryable
    assert "routine 'unit.missing' is not loaded on worker unit-worker" in failed.error.message
    assert "unit.echo" in failed.error.message


async def test_a_repeated_start_of_the_same_attempt_is_ignored() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.sleep", "run-1", seconds=0.2))
        await connection.expect(directives.RoutineStarting)
        await connection.send(fakes.start("unit.sleep", "run-1", seconds=0.2))  # while running
        await connection.expect(directives.RoutineCompleted)
        await connection.send(fakes.start("unit.sleep", "run-1", seconds=0.2))  # finished, not confirmed
        pulse = await connection.pulse()  # nothing but the pulse answer came in between
        assert pulse.running == []
        assert connection.frames.empty()


async def test_pulses_are_answered_while_a_sync_routine_holds_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workpath.routine")  # routine logs at INFO are sent
    gate.clear()
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.blocking", "run-1"))
        await connection.expect(directives.RoutineStarting)
        log = await connection.expect(directives.Log)  # sent from the routine's thread
        assert (log.run_id, log.message) == ("run-1", "waiting for the gate")
        for _ in range(3):
            pulse = await connection.pulse()
            assert (pulse.status, pulse.running) == ("busy", ["run-1"])
        gate.set()
        completed = await connection.expect(directives.RoutineCompleted)
        assert completed.result == "opened"


async def test_cancel_stops_the_run_and_reports_it_cancelled() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)) as task,
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.sleep", "run-1", seconds=30))
        await connection.expect(directives.RoutineStarting)
        await connection.send(directives.CancelRoutine(run_id=directives.RunID("nope"), reason="unknown run"))
        await connection.send(directives.CancelRoutine(run_id=directives.RunID("run-1"), reason="deleted"))
        failed = await connection.expect(directives.RoutineFailed)
        assert failed.error.model_dump() == {
            "type": "Cancelled",
            "message": "deleted",
            "retryable": False,
            "delay": None,
        }
        assert not task.done()


async def test_a_run_past_its_deadline_fails_with_a_retryable_timeout() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        start = fakes.start("unit.sleep", "run-1", seconds=30).model_copy(
            update={"deadline": directives.now() + datetime.timedelta(seconds=0.1)}
        )
        await connection.send(start)
        failed = await connection.expect(directives.RoutineFailed, skip=(directives.RoutineStarting, directives.Log))
    assert failed.error.type == "TimeoutError"
    assert failed.error.retryable
    assert "did not finish before its deadline" in failed.error.message


async def test_an_error_from_the_service_is_logged_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), DEFINITIONS)),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(
            directives.Error(code="stale_attempt", message="attempt 1 is stale", in_reply_to="v1.routine.completed")
        )
        await connection.pulse()
    assert "the service refused a directive: stale_attempt: attempt 1 is stale (in reply to v1.routine.completed)" in (
        caplog.text
    )
