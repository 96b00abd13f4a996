"""Draining: say so, hand back new runs, finish (or hand back) running ones, wait for confirmation, exit 0."""

from __future__ import annotations

import asyncio

import workpath
from tests import waiting
from tests.worker import fakes
from workpath import directives, working

RunID = directives.RunID


@workpath.routine("unit.sleep")
async def sleep(ctx: workpath.Context, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


async def test_a_drain_finishes_running_jobs_and_releases_new_ones() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [sleep])
        async with fakes.running(worker) as task:
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.sleep", "run-1", seconds=0.3))
            await connection.expect(directives.RoutineStarting)

            worker.drain()
            status = await connection.expect(directives.GivePulse)
            assert (status.id, status.status, status.running) == (None, "draining", ["run-1"])
            await connection.send(fakes.start("unit.sleep", "run-2", attempt=2, seconds=0))
            released = await connection.expect(directives.Released)
            assert (released.run_id, released.attempt, released.reason) == ("run-2", 2, "worker draining")
            assert (await connection.pulse()).status == "draining"

            completed = await connection.expect(directives.RoutineCompleted)
            assert completed.run_id == "run-1"
            assert not task.done()  # waiting for the service to confirm the final reports
            await connection.pulse()
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0
            await asyncio.wait_for(connection.closed.wait(), fakes.TIMEOUT)


async def test_jobs_still_running_at_the_drain_timeout_are_handed_back() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, drain_timeout=0.1), [sleep])
        async with fakes.running(worker) as task:
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.sleep", "run-1", attempt=4, seconds=30))
            await connection.expect(directives.RoutineStarting)
            worker.drain()
            released = await connection.expect(directives.Released)
            assert (released.run_id, released.attempt, released.reason) == ("run-1", 4, "worker draining")
            await connection.pulse()
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0


async def test_a_drain_does_not_wait_forever_for_confirmation() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, confirm_timeout=0.1), [sleep])
        async with fakes.running(worker) as task:
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.sleep", "run-1", seconds=0))
            await connection.expect(directives.RoutineCompleted, skip=(directives.RoutineStarting,))
            worker.drain()  # no pulse check will come
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0


async def test_a_drain_while_disconnected_exits_without_waiting() -> None:
    async with fakes.fake_service() as service:
        service.refuse_with = 503
        worker = working.Worker(fakes.worker_settings(service, confirm_timeout=30), [sleep])
        async with fakes.running(worker) as task:
            await waiting.eventually(lambda: service.attempts >= 2, what="a refused connection")
            worker.drain()
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0


async def test_a_drained_worker_leaves_no_task_behind() -> None:
    def workers_tasks() -> list[asyncio.Task[object]]:
        return [
            task
            for task in asyncio.all_tasks()
            if task is not asyncio.current_task() and task.get_name().startswith(("workpath-", "run-"))
        ]

    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, drain_timeout=0.05), [sleep])
        async with fakes.running(worker) as task:
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.sleep", "run-1", seconds=30))
            await connection.send(fakes.start("unit.sleep", "run-2", seconds=0))
            await connection.expect(directives.RoutineCompleted, skip=(directives.RoutineStarting,))
            assert [t.get_name() for t in workers_tasks()].count("run-1") == 1
            worker.drain()
            await connection.expect(directives.Released)
            await connection.pulse()
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0
        assert workers_tasks() == []


async def test_a_drain_asked_before_running_happens_at_start() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [sleep])
        worker.drain()
        async with fakes.running(worker) as task:
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0
