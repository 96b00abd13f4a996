"""The routines of ``bench.versus``: the same workloads as ``bench.celery_tasks``, written as a workpath user would."""

from __future__ import annotations

import workpath


@workpath.routine("versus.noop")
async def noop(ctx: workpath.Context) -> None:
    return None


@workpath.routine("versus.fanout")
async def fanout(ctx: workpath.Context, count: int) -> int:
    """A parent that calls ``count`` no-op children at once and waits for them all."""
    results = await ctx.gather(*(ctx.call("versus.noop") for _ in range(count)))
    return len(results)
