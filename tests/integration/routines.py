"""Routines the integration tests run in real worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import time
from typing import Any

import workpath


@workpath.routine("test.noop")
async def noop(ctx: workpath.Context) -> None:
    return None


@workpath.routine("test.echo")
async def echo(ctx: workpath.Context, value: Any) -> dict[str, Any]:
    return {"value": value, "runID": ctx.run_id, "attempt": ctx.attempt}


@workpath.routine("test.square")
def square(ctx: workpath.Context, x: int) -> int:
    return x * x


@workpath.routine("test.fanout")
async def fanout(ctx: workpath.Context, n: int) -> dict[str, Any]:
    squares = await ctx.gather(*(ctx.call("test.square", x=i) for i in range(n)))
    return {"squares": squares, "sum": sum(squares)}


@workpath.routine("test.chain")
async def chain(ctx: workpath.Context, depth: int) -> list[str]:
    """Each level calls the next and waits for it: a parent -> child -> grandchild chain."""
    if depth <= 1:
        return [ctx.run_id]
    below: list[str] = await ctx.call("test.chain", depth=depth - 1)
    return [ctx.run_id, *below]


@workpath.routine("test.gate")
async def gate(ctx: workpath.Context, markers: str, gate: str) -> str:
    """Record that this attempt started, then wait until the test opens the gate (a file)."""
    pathlib.Path(markers, f"{ctx.run_id}.{ctx.attempt}.{os.getpid()}").touch()
    while not pathlib.Path(gate).exists():
        await asyncio.sleep(0.01)
    pathlib.Path(markers, f"done.{ctx.run_id}.{ctx.attempt}").touch()
    return f"opened on attempt {ctx.attempt}"


@workpath.routine("test.fail")
async def fail(ctx: workpath.Context, retryable: bool = False) -> None:
    if retryable:
        raise workpath.TemporaryError("try again later")
    raise ValueError("this input can never work")


@workpath.routine("test.flaky")
async def flaky(ctx: workpath.Context, failures: int) -> int:
    if ctx.attempt <= failures:
        raise workpath.TemporaryError(f"attempt {ctx.attempt} fails on purpose")
    return ctx.attempt


@workpath.routine("test.sleep")
async def sleep(ctx: workpath.Context, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workpath.routine("test.blocking")
def blocking(ctx: workpath.Context, seconds: float) -> float:
    """A sync routine that holds its thread; heartbeats must keep flowing meanwhile."""
    time.sleep(seconds)
    return seconds


@workpath.routine("test.log")
async def log(ctx: workpath.Context, lines: int) -> int:
    for n in range(lines):
        ctx.log.info("line", n=n)
    return lines


@workpath.routine("test.call_failing")
async def call_failing(ctx: workpath.Context) -> None:
    await ctx.call("test.fail", retryable=False)


@workpath.routine("test.abandon")
async def abandon(ctx: workpath.Context, markers: str, gate: str, release: str) -> str:
    """Gather a sub-routine that waits with one that fails; carry on after the failure until released."""
    with contextlib.suppress(workpath.RoutineFailedError):
        await ctx.gather(ctx.call("test.gate", markers=markers, gate=gate), ctx.call("test.fail"))
    while not pathlib.Path(release).exists():
        await asyncio.sleep(0.01)
    return "released"


@workpath.routine("test.hold")
async def hold(ctx: workpath.Context, markers: str, seconds: float) -> int:
    """Record that this attempt started, hold a slot for ``seconds``, record that it completed."""
    pathlib.Path(markers, f"{ctx.run_id}.{ctx.attempt}.{os.getpid()}").touch()
    await asyncio.sleep(seconds)
    pathlib.Path(markers, f"done.{ctx.run_id}.{ctx.attempt}").touch()
    return ctx.attempt


@workpath.routine("test.children")
async def children(ctx: workpath.Context, n: int) -> list[tuple[str | None, str | None, str | None]]:
    """Call ``n`` quick children; say what this run knows of each: its run ID, worker ID and start time."""
    await ctx.gather(*(ctx.call("test.echo", value=i) for i in range(n)))
    return [
        (call.run_id, call.worker_id, call.started_at.isoformat() if call.started_at else None)
        for call in ctx.subroutines
    ]
