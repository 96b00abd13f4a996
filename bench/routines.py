"""Routines the benchmark runs."""

from __future__ import annotations

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
