"""Routines the benchmark runs."""

from __future__ import annotations

import asyncio
import os
import pathlib
import time

import workpath


@workpath.routine("bench.noop")
async def noop(ctx: workpath.Context) -> None:
    return None


@workpath.routine("bench.calls")
async def calls(ctx: workpath.Context, count: int) -> list[float]:
    """Call a no-op sub-routine ``count`` times in a row; return each round trip in seconds."""
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        await ctx.call("bench.noop")
        durations.append(time.perf_counter() - started)
    return durations


@workpath.routine("bench.nap")
async def nap(ctx: workpath.Context, seconds: float, markers: str = "") -> None:
    """Sleep ``seconds``; with ``markers`` (a folder), first leave ``started.<run>.<attempt>.<pid>`` in it.

    The markers show a run that started twice (bench/pools.py counts them: a scale-down must interrupt none).
    """
    if markers:
        (pathlib.Path(markers) / f"started.{ctx.run_id}.{ctx.attempt}.{os.getpid()}").touch()
    await asyncio.sleep(seconds)


@workpath.routine("bench.fanout")
async def fanout(ctx: workpath.Context, children: int) -> int:
    """Call ``children`` no-op sub-routines at once and wait for all of them; return how many ended."""
    results = await ctx.gather(*(ctx.call("bench.noop") for _ in range(children)))
    return len(results)
