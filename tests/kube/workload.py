"""Routines the workers of the operator tests run; they leave marker files so tests can see what ran."""

from __future__ import annotations

import asyncio
import os
import pathlib

import workpath


@workpath.routine("k8s.block")
async def block(ctx: workpath.Context, markers: str, gate: str) -> str:
    """Mark that this attempt started, wait until the test opens ``gate`` (a file), mark that it ended.

    ``started.<run>.<attempt>.<pid>``, then ``done.<run>.<attempt>`` or, when cancelled, ``cancelled.<run>``.
    """
    folder = pathlib.Path(markers)
    (folder / f"started.{ctx.run_id}.{ctx.attempt}.{os.getpid()}").touch()
    try:
        while not pathlib.Path(gate).exists():
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        (folder / f"cancelled.{ctx.run_id}").touch()
        raise
    (folder / f"done.{ctx.run_id}.{ctx.attempt}").touch()
    return f"opened on attempt {ctx.attempt}"


@workpath.routine("k8s.sized")
async def sized(ctx: workpath.Context, size: int) -> str:
    """A result of ``size`` characters."""
    return "x" * size


@workpath.routine("k8s.flaky")
async def flaky(ctx: workpath.Context, failures: int) -> int:
    """Fail the first ``failures`` attempts with a retryable error."""
    if ctx.attempt <= failures:
        raise workpath.TemporaryError(f"attempt {ctx.attempt} fails on purpose")
    return ctx.attempt


@workpath.routine("k8s.broken")
async def broken(ctx: workpath.Context) -> None:
    raise ValueError("this input can never work")


@workpath.routine("k8s.fan")
async def fan(ctx: workpath.Context, markers: str, gate: str, parts: int) -> list[str]:
    """``parts`` sub-routines of ``k8s.block`` at once; their results."""
    results: list[str] = await ctx.gather(*(ctx.call("k8s.block", markers=markers, gate=gate) for _ in range(parts)))
    return results


@workpath.routine("k8s.nap")
async def nap(ctx: workpath.Context, markers: str, seconds: float) -> int:
    """Mark that this attempt started (``started.<run>.<attempt>.<pid>``), sleep ``seconds``, mark that it ended
    (``done.<run>.<attempt>``); the attempt."""
    folder = pathlib.Path(markers)
    (folder / f"started.{ctx.run_id}.{ctx.attempt}.{os.getpid()}").touch()
    await asyncio.sleep(seconds)
    (folder / f"done.{ctx.run_id}.{ctx.attempt}").touch()
    return ctx.attempt
