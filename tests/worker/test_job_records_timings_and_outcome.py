"""A job wraps a task; it records when it was created, started and completed, and how it ended."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import workpath
from tests import waiting
from workpath import contexts, directives, jobs


class QuietChannel:
    loop = property(lambda self: asyncio.get_running_loop())

    def request_subroutine(self, *args: Any, **kwargs: Any) -> contexts.SubroutineCall:
        raise AssertionError("not expected")

    def forget_subroutine(self, call: contexts.SubroutineCall) -> None: ...

    def send_log(self, run_id: directives.RunID, frame: str) -> None: ...


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def make_job(
    definition: workpath.RoutineDefinition[..., Any],
    *,
    deadline: datetime.datetime | None = None,
    created: datetime.datetime | None = None,
    **params: Any,
) -> jobs.Job:
    ctx = contexts.Context(
        channel=QuietChannel(),
        run_id=directives.RunID("run-1"),
        routine_id=definition.id,
        attempt=1,
        params=params,
        worker_id=directives.WorkerID("unit-worker"),
        deadline=deadline,
    )
    return jobs.Job(run_id=ctx.run_id, attempt=1, task=jobs.Task(definition, ctx), created=created)


@workpath.routine("unit.sleep")
async def sleep(ctx: workpath.Context, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def test_run_time_is_completed_minus_started_and_round_trip_counts_from_creation(
    executor: concurrent.futures.Executor,
) -> None:
    created = directives.now() - datetime.timedelta(seconds=1)
    job = make_job(sleep, created=created, seconds=0.05)
    assert job.run_time is None
    assert job.round_trip_time >= datetime.timedelta(seconds=1)  # now - created while not completed
    await job.run(executor)
    assert job.task.done and job.task.error is None and job.task.result == 0.05
    assert job.started is not None and job.completed is not None
    assert created < job.started <= job.completed
    assert job.run_time == job.completed - job.started
    assert job.run_time is not None and job.run_time >= datetime.timedelta(seconds=0.05)
    assert job.round_trip_time == job.completed - created
    first = job.round_trip_time
    await asyncio.sleep(0.01)
    assert job.round_trip_time == first  # frozen once completed


async def test_a_failure_is_recorded_not_raised(executor: concurrent.futures.Executor) -> None:
    @workpath.routine("unit.fail")
    def fail(ctx: workpath.Context) -> None:
        raise workpath.TemporaryError("later", delay=3)

    job = make_job(fail)
    await job.run(executor)
    assert job.task.done
    assert isinstance(job.task.error, workpath.TemporaryError)
    assert job.completed is not None


async def test_a_deadline_is_enforced_as_a_timeout(executor: concurrent.futures.Executor) -> None:
    job = make_job(sleep, deadline=directives.now() + datetime.timedelta(seconds=0.05), seconds=30)
    await asyncio.wait_for(job.run(executor), 5)
    assert isinstance(job.task.error, TimeoutError)
    assert "did not finish before its deadline" in str(job.task.error)
    assert job.task.context.cancelled


async def test_a_deadline_already_past_fails_without_running(executor: concurrent.futures.Executor) -> None:
    job = make_job(sleep, deadline=directives.now() - datetime.timedelta(seconds=1), seconds=30)
    await job.run(executor)
    assert isinstance(job.task.error, TimeoutError)
    assert "before it started" in str(job.task.error)


async def test_a_user_timeout_is_not_mistaken_for_the_deadline(executor: concurrent.futures.Executor) -> None:
    @workpath.routine("unit.own_timeout")
    async def own_timeout(ctx: workpath.Context) -> None:
        raise TimeoutError("the database did not answer")

    job = make_job(own_timeout, deadline=directives.now() + datetime.timedelta(seconds=30))
    await job.run(executor)
    assert str(job.task.error) == "the database did not answer"
    assert not job.task.context.cancelled


async def test_cancel_stops_an_async_routine(executor: concurrent.futures.Executor) -> None:
    job = make_job(sleep, seconds=30)
    job.runner = asyncio.create_task(job.run(executor))
    await waiting.eventually(lambda: job.started is not None, what="the job to start")
    assert job.cancel("user asked")
    await asyncio.wait_for(job.runner, 5)
    assert job.cancel_reason == "user asked"
    assert isinstance(job.task.error, asyncio.CancelledError)
    assert job.task.context.cancelled
    assert not job.cancel("again")


async def test_cancel_of_a_sync_routine_marks_it_and_stops_waiting(executor: concurrent.futures.Executor) -> None:
    release = threading.Event()

    @workpath.routine("unit.blocking")
    def blocking(ctx: workpath.Context) -> str:
        release.wait(10)
        return "too late"

    job = make_job(blocking)
    job.runner = asyncio.create_task(job.run(executor))
    await waiting.eventually(lambda: job.thread is not None, what="the routine's thread to start")
    job.cancel("user asked")
    await asyncio.wait_for(job.runner, 5)
    assert job.task.context.cancelled
    assert job.task.result is None  # dropped
    assert job.thread is not None and not job.thread.done()  # a thread cannot be killed
    release.set()
    await asyncio.wrap_future(job.thread)


async def test_a_cancellation_from_elsewhere_propagates(executor: concurrent.futures.Executor) -> None:
    job = make_job(sleep, seconds=30)
    runner = asyncio.create_task(job.run(executor))
    await waiting.eventually(lambda: job.started is not None, what="the job to start")
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert job.cancel_reason == jobs.SHUTDOWN


async def test_a_cancelled_error_raised_inside_the_routine_is_a_failure(executor: concurrent.futures.Executor) -> None:
    @workpath.routine("unit.awaits_cancelled")
    async def awaits_cancelled(ctx: workpath.Context) -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    job = make_job(awaits_cancelled)
    await asyncio.create_task(job.run(executor))  # does not raise: the job was not cancelled
    assert isinstance(job.task.error, asyncio.CancelledError)
    assert job.cancel_reason is None
