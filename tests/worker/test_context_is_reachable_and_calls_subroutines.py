"""The routine context: from the argument or ``workpath.context()``, in tasks and in threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from typing import Any

import pytest

import workpath
from tests import waiting
from workpath import contexts, directives, errors, jobs


class FakeChannel:
    """Records what a context asks of the runtime."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.calls: list[tuple[contexts.SubroutineCall, dict[str, Any], float | None, str | None]] = []
        self.forgotten: list[contexts.SubroutineCall] = []
        self.logs: list[tuple[int, directives.Log]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def request_subroutine(
        self,
        parent: contexts.Context,
        routine_id: directives.RoutineID,
        params: dict[str, Any],
        *,
        timeout_seconds: float | None,
        pool: str | None,
    ) -> contexts.SubroutineCall:
        call = contexts.SubroutineCall(
            request_id=directives.RequestID(f"r{len(self.calls) + 1}"),
            routine_id=routine_id,
            frame="",
            parent_run_id=parent.run_id,
            future=self._loop.create_future(),
        )
        self.calls.append((call, params, timeout_seconds, pool))
        return call

    def forget_subroutine(self, call: contexts.SubroutineCall) -> None:
        self.forgotten.append(call)

    def send_log(self, run_id: directives.RunID, frame: str) -> None:
        entry = directives.decode_from_worker(frame)
        assert isinstance(entry, directives.Log)
        self.logs.append((threading.get_ident(), entry))


def make_context(channel: FakeChannel, **params: Any) -> contexts.Context:
    return contexts.Context(
        channel=channel,
        run_id=directives.RunID("run-1"),
        routine_id=directives.RoutineID("unit.routine"),
        attempt=2,
        params=params,
        worker_id=directives.WorkerID("unit-worker"),
    )


async def run_job(definition: workpath.RoutineDefinition[..., Any], ctx: contexts.Context) -> jobs.Job:
    job = jobs.Job(run_id=ctx.run_id, attempt=ctx.attempt, task=jobs.Task(definition, ctx))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        await job.run(executor)
    return job


def test_context_outside_a_routine_says_so() -> None:
    with pytest.raises(errors.ContextError, match=r"workpath.context\(\) was called outside a routine"):
        workpath.context()


async def test_an_async_routine_finds_its_context() -> None:
    seen: list[object] = []

    @workpath.routine("unit.routine")
    async def routine(ctx: workpath.Context, value: int) -> int:
        seen.append(workpath.context())
        return value * 2

    ctx = make_context(FakeChannel(), value=21)
    job = await run_job(routine, ctx)
    assert job.task.result == 42
    assert seen == [ctx]
    with pytest.raises(errors.ContextError):
        workpath.context()  # not leaked into the caller


async def test_a_sync_routine_finds_its_context_in_its_thread() -> None:
    seen: list[tuple[object, str]] = []

    @workpath.routine("unit.routine")
    def routine(ctx: workpath.Context) -> None:
        seen.append((workpath.context(), threading.current_thread().name))

    ctx = make_context(FakeChannel())
    await run_job(routine, ctx)
    assert seen[0][0] is ctx
    assert seen[0][1] != threading.current_thread().name


async def test_call_sends_a_request_and_returns_the_result() -> None:
    channel = FakeChannel()
    ctx = make_context(channel)
    pending = asyncio.ensure_future(ctx.call("reports.part", month="2026-10"))
    await asyncio.sleep(0)
    (call, params, timeout, pool), *_ = channel.calls
    assert (call.routine_id, params, timeout, pool) == ("reports.part", {"month": "2026-10"}, None, None)
    call.future.set_result({"rows": 3})
    assert await pending == {"rows": 3}
    assert channel.forgotten == [call]
    assert ctx.subroutines == (call,)


async def test_call_with_passes_options_and_accepts_a_definition() -> None:
    @workpath.routine("reports.part")
    def part(ctx: workpath.Context) -> None: ...

    channel = FakeChannel()
    ctx = make_context(channel)
    pending = asyncio.ensure_future(ctx.call_with(part, {"n": 1}, timeout_seconds=5.0, pool="big"))
    await asyncio.sleep(0)
    call, params, timeout, pool = channel.calls[0]
    assert (call.routine_id, params, timeout, pool) == ("reports.part", {"n": 1}, 5.0, "big")
    call.future.set_result(None)
    await pending


async def test_a_failed_subroutine_raises_with_the_remote_error() -> None:
    channel = FakeChannel()
    ctx = make_context(channel)
    pending = asyncio.ensure_future(ctx.call("reports.part"))
    await asyncio.sleep(0)
    channel.calls[0][0].future.set_exception(
        errors.RoutineFailedError("reports.part", type="ValueError", message="bad month", retryable=False)
    )
    with pytest.raises(
        errors.RoutineFailedError, match=re.escape("sub-routine 'reports.part' failed: ValueError: bad month")
    ):
        await pending


async def test_call_refuses_a_bad_routine_id() -> None:
    ctx = make_context(FakeChannel())
    with pytest.raises(errors.RoutineDefinitionError, match="invalid routine ID"):
        await ctx.call("not an id")


@pytest.mark.looptime
async def test_gather_returns_results_in_order() -> None:
    async def after(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    ctx = make_context(FakeChannel())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await ctx.gather(after(0.02, 1), after(0.0, 2), after(0.01, 3)) == [1, 2, 3]
    assert loop.time() - started == pytest.approx(0.02, abs=1e-3)  # side by side, not one after another
    assert await ctx.gather() == []


async def test_gather_cancels_the_rest_on_the_first_failure() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    ctx = make_context(FakeChannel())
    with pytest.raises(ValueError, match="boom"):
        await ctx.gather(slow(), failing())
    assert cancelled.is_set()


async def test_call_sync_blocks_a_thread_and_refuses_the_loop() -> None:
    channel = FakeChannel()
    ctx = make_context(channel)
    with pytest.raises(errors.ContextError, match="cannot run on the event loop"):
        ctx.call_sync("reports.part")

    result = asyncio.get_running_loop().run_in_executor(None, lambda: ctx.call_sync("reports.part", n=1))
    await waiting.eventually(lambda: channel.calls, what="the call from the routine's thread")
    channel.calls[0][0].future.set_result("from the child")
    assert await result == "from the child"


async def test_cancelling_the_run_cancels_its_pending_calls() -> None:
    @workpath.routine("unit.routine")
    async def routine(ctx: workpath.Context) -> None: ...

    channel = FakeChannel()
    ctx = make_context(channel)
    job = jobs.Job(run_id=ctx.run_id, attempt=ctx.attempt, task=jobs.Task(routine, ctx))
    pending = asyncio.ensure_future(ctx.call("reports.part"))
    await asyncio.sleep(0)
    assert job.cancel("the run was deleted")  # how the runtime cancels a run: through its job
    assert ctx.cancelled
    assert channel.calls[0][0].future.cancelled()
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_log_writes_locally_and_sends_from_any_thread(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workpath.routine")
    channel = FakeChannel()
    ctx = make_context(channel)
    ctx.log.info("building", month="2026-10")
    ctx.log.debug("not shown")
    await asyncio.get_running_loop().run_in_executor(None, lambda: ctx.log.warning("odd", value=object()))
    assert [(e.level, e.message) for _, e in channel.logs] == [("info", "building"), ("warning", "odd")]
    assert channel.logs[0][1].fields == {"month": "2026-10"}
    assert channel.logs[1][1].fields["value"].startswith("<object object")  # not JSON: sent as repr
    assert channel.logs[0][0] != channel.logs[1][0]
    assert "[unit.routine run=run-1] building month='2026-10'" in caplog.text
