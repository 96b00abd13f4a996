"""A report built from parts: one routine fanning out to sub-routines with ``ctx.gather``.

Run it locally, no cluster needed::

    workpath dev examples.reports --run reports.build --param month=2026-10
"""

from __future__ import annotations

import hashlib

import workpath


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
