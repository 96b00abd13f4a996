"""workpath side by side with Celery on this machine: throughput, sequential latency, fan-out.

    .venv/bin/python -m bench.versus [--quick] [--repeats 3] [--rest SECONDS] [--json PATH] [--no-celery]
                                     [--profile DIR]

The same three workloads on both, each side with its client in a process of its own and its servers in others:

- **throughput**: 20,000 no-op runs, all submitted, then all awaited (Celery: ``noop.delay()`` x N, then
  ``.get()`` each; workpath: ``client.submit_many``, then each handle awaited);
- **sequential latency**: 1,000 no-op runs one at a time, p50 and p99 of submit-to-result;
- **fan-out**: a parent that calls 1,000 no-op children and waits (Celery: a task that replaces itself with a
  chord, children then a collecting callback, the caller waiting on the parent's result; workpath: a routine
  doing ``ctx.gather`` of 1,000 ``ctx.call``).

workpath runs as ``workpath dev`` (the service, 1 worker process x 50 slots) with ``workpath.Client`` in this
process. Celery runs a worker of 50 (prefork by default) with Redis as broker and result backend, the client in
a process of Celery's virtualenv. ``scripts/setup-celery-bench.sh`` installs redis-server (Debian) and Celery
(its own virtualenv, ``~/.cache/workpath/bench-celery-venv``) when missing; where it cannot, the Celery columns
are skipped with the reason. Repetitions alternate the sides (which goes first alternates too); the table shows
medians, the ratios, and the targets: >= 20x Celery's throughput, >= 5x lower p99 latency, >= 20x faster fan-out.

Each measured run starts once every process of both sides is idle (under 2% of a CPU in two 50 ms windows), so that
neither side still works while the other is measured. ``--rest SECONDS`` leaves them idle that much longer first:
it shows what a workload costs on a system that was idle longer. Where the kernel packs processes that were idle
onto one CPU for a while (this 2-vCPU VM does, after ~0.1 s), a workload of a few tens of milliseconds started
after a rest runs its service and worker on one core at first: workpath's fan-out takes ~40 ms when repeated
back to back, and ~55 ms here, whether started 0.1 s or 1 s after the last run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import versus_celery, versus_profiling, versus_reporting, versus_sides, versus_workpath

Workload = versus_sides.Workload


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each workload does, and how often."""

    runs: int
    samples: int
    children: int
    repeats: int

    def count(self, workload: Workload) -> int:
        return {Workload.THROUGHPUT: self.runs, Workload.LATENCY: self.samples, Workload.FANOUT: self.children}[
            workload
        ]

    def warm_up(self, workload: Workload) -> int:
        """A small first round, not measured: imports, connections, pools and caches warm on both sides."""
        return max(1, self.count(workload) // 10)


DEFAULT = Sizes(runs=20_000, samples=1_000, children=1_000, repeats=3)
QUICK = Sizes(runs=4_000, samples=300, children=300, repeats=2)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, 2 repetitions (~1 minute)")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per workload and side")
    parser.add_argument("--runs", type=int, default=None, help="no-op runs of the throughput workload")
    parser.add_argument("--samples", type=int, default=None, help="runs of the sequential latency workload")
    parser.add_argument("--children", type=int, default=None, help="children of the fan-out parent")
    parser.add_argument("--slots", type=int, default=50, help="workpath's slots, and Celery's pool size")
    parser.add_argument("--celery-pool", default="prefork", choices=["prefork", "threads"], help="Celery's pool")
    parser.add_argument("--celery-venv", type=pathlib.Path, default=versus_celery.DEFAULT_VENV)
    parser.add_argument("--no-celery", action="store_true", help="the workpath side only")
    parser.add_argument(
        "--rest",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="idle seconds before each measured run, once both sides are idle (default 0: start at once)",
    )
    parser.add_argument("--json", type=pathlib.Path, default=None, metavar="PATH", help="write the results here")
    parser.add_argument(
        "--profile",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="after the measures, profile workpath's throughput (once) and fan-out (20 times) with py-spy on the "
        "service and worker when installed, cProfile on the client, into DIR; print the top frames",
    )
    return parser.parse_args(argv)


def sizes_of(options: argparse.Namespace) -> Sizes:
    base = QUICK if options.quick else DEFAULT
    return Sizes(
        runs=options.runs or base.runs,
        samples=options.samples or base.samples,
        children=options.children or base.children,
        repeats=options.repeats or base.repeats,
    )


async def measure(
    sides: Sequence[versus_sides.Side], sizes: Sizes, *, rest: float
) -> dict[str, dict[Workload, list[versus_sides.Outcome]]]:
    """Every workload, ``repeats`` times on each side, sides alternating (and which one goes first, too); each
    measured run starts once every process of both sides is idle, and ``rest`` seconds later."""
    for workload in Workload:
        for side in sides:
            await side.run(workload, sizes.warm_up(workload))
    outcomes: dict[str, dict[Workload, list[versus_sides.Outcome]]] = {s.name: {w: [] for w in Workload} for s in sides}
    for repeat in range(sizes.repeats):
        for index, workload in enumerate(Workload):
            order = sides if (repeat + index) % 2 == 0 else list(reversed(sides))
            for side in order:
                await versus_sides.settle()
                await asyncio.sleep(rest)
                outcome = await side.run(workload, sizes.count(workload))
                outcomes[side.name][workload].append(outcome)
                print(f"  {side.name:>8} {workload.value:<10} #{repeat + 1}: {outcome.seconds:8.3f} s", file=sys.stderr)
    return outcomes


async def run_bench(options: argparse.Namespace, sizes: Sizes, *, skip_reason: str | None) -> dict[str, Any]:
    loads = [os.getloadavg()[0]]
    settings = versus_celery.CelerySettings(
        venv=options.celery_venv, pool=options.celery_pool, concurrency=options.slots
    )
    async with contextlib.AsyncExitStack() as stack:
        sides: list[versus_sides.Side] = []
        print(f"starting workpath dev (1 worker x {options.slots} slots) ...", file=sys.stderr)
        workpath_side = await stack.enter_async_context(versus_workpath.started(slots=options.slots))
        sides.append(workpath_side)
        if skip_reason is None:
            print(f"starting redis-server and a Celery worker ({settings.describe()}) ...", file=sys.stderr)
            sides.append(await stack.enter_async_context(versus_celery.started(settings)))
        started = time.perf_counter()
        outcomes = await measure(sides, sizes, rest=options.rest)
        elapsed = time.perf_counter() - started
        loads.append(os.getloadavg()[0])
        profile = None
        if options.profile is not None:
            plan = {Workload.THROUGHPUT: (sizes.runs, 1), Workload.FANOUT: (sizes.children, 20)}
            profile = await versus_profiling.profile(workpath_side, plan=plan, folder=options.profile)
    return {
        "machine": machine(loads),
        "sizes": dataclasses.asdict(sizes),
        "restSeconds": options.rest,
        "seconds": elapsed,
        "sides": {side.name: side.versions for side in sides},
        "celery": None if skip_reason is not None else settings.describe(),
        "celerySkipped": skip_reason,
        "outcomes": outcomes,
        "profile": profile,
    }


def machine(loads: list[float]) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadAverage1m": {"start": loads[0], "end": loads[-1]},
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    sizes = sizes_of(options)
    skip_reason = "--no-celery" if options.no_celery else None
    if skip_reason is None:
        skip_reason = versus_celery.set_up(versus_celery.CelerySettings(venv=options.celery_venv))
        if skip_reason is not None:
            print(f"skipping the Celery side: {skip_reason}", file=sys.stderr)
    raw = versus_reporting.run_async(run_bench(options, sizes, skip_reason=skip_reason))
    report = versus_reporting.summarize(raw)
    versus_reporting.print_table(report)
    if options.json is not None:
        options.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {options.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
