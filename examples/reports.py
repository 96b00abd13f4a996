"""A report built from parts: one routine fanning out to sub-routines with ``ctx.gather``; and archived by a long
plain function that stops early when its run is cancelled.

Run it locally, no cluster needed::

    workpath dev examples.reports --run reports.build --param month=2026-10
"""

from __future__ import annotations

import hashlib
import time

import workpath

STEP_SECONDS = 0.5
"""How often a long archive looks at ``ctx.cancelled``."""


@workpath.routine("reports.build")
async def build(ctx: workpath.Context, month: str, parts: int = 4) -> dict[str, object]:
    """Build the report for ``month`` from ``parts`` parts, each a sub-routine on any worker."""
    ctx.log.info("building report", month=month, parts=parts)
    results = await ctx.gather(*(ctx.call("reports.part", month=month, n=n) for n in range(parts)))
    rows = sum(int(r["rows"]) for r in results)
    ctx.log.info("report built", rows=rows)
    return {"month": month, "parts": len(results), "rows": rows}


@workpath.routine("reports.part")
def part(ctx: workpath.Context, month: str, n: int) -> dict[str, int]:
    """One part of the report. A plain function: it runs in the worker's thread pool."""
    digest = hashlib.sha256(f"{month}/{n}".encode()).digest()
    return {"n": n, "rows": 100 + digest[0]}


@workpath.routine("reports.archive")
def archive(ctx: workpath.Context, month: str, seconds: float = 10.0) -> dict[str, object]:
    """Archive the report for ``month``: a long job (``seconds`` of it here), done in short steps.

    A plain function runs in a thread, and a thread cannot be interrupted: it looks at ``ctx.cancelled`` between
    steps and stops early when the run was cancelled or timed out (its result would be dropped anyway).
    """
    ctx.log.info("archiving report", month=month, seconds=seconds)
    deadline = time.monotonic() + seconds
    steps = 0
    while (left := deadline - time.monotonic()) > 0:
        if ctx.cancelled:
            ctx.log.warning("archiving stopped", month=month, steps=steps)
            return {"month": month, "steps": steps, "archived": False}
        time.sleep(min(left, STEP_SECONDS))
        steps += 1
    ctx.log.info("report archived", month=month, steps=steps)
    return {"month": month, "steps": steps, "archived": True}
