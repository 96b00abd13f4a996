"""A test can cancel a run as ``v1.routine.cancel`` would, or give it a deadline; sub-runs stop with it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import workpath
from workpath import routines, testing

TIMEOUT = 5.0


class Gate:
    """Lets a routine tell the test it got somewhere, on the loop or from a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.reached = asyncio.Event()

    def open(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.reached.set()
        else:
            self.loop.call_soon_threadsafe(self.reached.set)

    async def wait(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.reached.wait()


def sleeper(gate: Gate, seen: list[str]) -> routines.RoutineDefinition[..., Any]:
    @workpath.routine("unit.sleeper")
    async def sleep(ctx: workpath.Context) -> None:
        gate.open()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append(f"cancelled={ctx.cancelled}")
            raise

    return sleep


async def test_a_cancelled_async_routine_sees_cancelled_error() -> None:
    gate, seen = Gate(), list[str]()
    run = testing.RoutineEnvironment().start(sleeper(gate, seen))
    await gate.wait()
    assert run.cancel("the run was deleted")
    outcome = await run.wait()
    assert seen == ["cancelled=True"]
    assert outcome.cancelled
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message, outcome.error.retryable) == (
        "Cancelled",
        "the run was deleted",
        False,
    )
    assert not run.cancel()  # already ended


async def test_a_cancelled_plain_routine_sees_ctx_cancelled() -> None:
    gate, noticed = Gate(), threading.Event()

    @workpath.routine("unit.worker")
    def busy(ctx: workpath.Context) -> None:
        gate.open()
        deadline = time.monotonic() + TIMEOUT
        while not ctx.cancelled and time.monotonic() < deadline:
            time.sleep(0.005)
        if ctx.cancelled:
            noticed.set()

    run = testing.RoutineEnvironment().start(busy)
    await gate.wait()
    run.cancel()
    outcome = await run.wait()
    assert outcome.cancelled
    assert await asyncio.to_thread(noticed.wait, TIMEOUT)


@pytest.mark.looptime  # the deadline is the subject: it passes on the loop's fake clock
async def test_a_deadline_fails_the_run_with_a_retryable_timeout() -> None:
    gate, seen = Gate(), list[str]()
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await testing.RoutineEnvironment().start_with(sleeper(gate, seen), timeout_seconds=30).wait()
    assert loop.time() - started == pytest.approx(30, abs=0.5)  # at the deadline, not at the routine's end (60 s)
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.retryable) == ("TimeoutError", True)
    assert "did not finish before its deadline" in outcome.error.message


async def test_cancelling_a_run_cancels_the_sub_runs_it_waits_for() -> None:
    gate, seen = Gate(), list[str]()

    @workpath.routine("unit.waits")
    async def waits(ctx: workpath.Context) -> None:
        await ctx.call("unit.sleeper")

    env = testing.RoutineEnvironment([sleeper(gate, seen)])
    run = env.start(waits)
    await gate.wait()
    run.cancel()
    assert (await run.wait()).cancelled
    (request,) = env.requests
    child = request.run.outcome
    assert child is not None and child.cancelled
    assert child.error is not None and child.error.message == "the caller stopped waiting"
    assert seen == ["cancelled=True"]


async def test_a_failed_sibling_cancels_the_others_in_gather() -> None:
    gate, seen = Gate(), list[str]()

    @workpath.routine("unit.fans_out")
    async def fans_out(ctx: workpath.Context) -> None:
        await ctx.gather(ctx.call("unit.sleeper"), ctx.call("unit.broken"))

    @workpath.routine("unit.broken")
    async def broken(ctx: workpath.Context) -> None:
        await gate.wait()
        raise workpath.PermanentError("broken")

    env = testing.RoutineEnvironment([sleeper(gate, seen), broken])
    outcome = await env.start(fans_out).wait()
    assert outcome.error is not None and "PermanentError: broken" in outcome.error.message
    sleeping, failing = (request.run.outcome for request in env.requests)
    assert sleeping is not None and sleeping.cancelled
    assert failing is not None and failing.error is not None and failing.error.type == "PermanentError"


async def test_sub_runs_nobody_waits_for_stop_when_the_run_ends() -> None:
    gate, seen, calls = Gate(), list[str](), list[asyncio.Future[object]]()

    @workpath.routine("unit.forgets")
    async def forgets(ctx: workpath.Context) -> str:
        calls.append(asyncio.ensure_future(ctx.call("unit.sleeper")))  # never awaited
        await gate.wait()
        return "done"

    env = testing.RoutineEnvironment([sleeper(gate, seen)])
    run = env.start(forgets)
    assert await run.result() == "done"
    (request,) = env.requests
    child = request.run.outcome
    assert child is not None and child.cancelled  # ended before the run's outcome was given
    assert seen == ["cancelled=True"]
