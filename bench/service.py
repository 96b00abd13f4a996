"""Benchmark of the directive service in local mode: throughput, dispatch latency, sub-routine round trip.

    .venv/bin/python -m bench.service [--runs 100000] [--slots 50]

One `workpath worker` process with 50 slots, the service in this process, real
sockets on 127.0.0.1, no-op routines. Prints a table with the targets: >= 20,000
no-op routines/s, dispatch latency p99 <= 1 ms, sub-routine round trip p50 <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import statistics
import sys
import time

from workpath import directives
from workpath_operator import cli
from workpath_operator.local import developing
from workpath_operator.service import authenticating, runs, serving, settings, stores

REPO = pathlib.Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


class CountingStore(stores.MemoryRunStore):
    """Counts finished runs and wakes the benchmark when a target is reached."""

    def __init__(self) -> None:
        super().__init__(keep=1_000)
        self.finished = 0
        self.target = 0
        self.done = asyncio.Event()
        self.started_at: dict[str, float] = {}
        self.watch: set[str] = set()
        #: Queued -> dispatched of each run dispatched while ``timing`` (the dispatcher counts it in buckets only).
        self.timing = False
        self.dispatch_latencies: list[float] = []

    def run_changed(self, run: runs.Run) -> None:
        super().run_changed(run)
        if run.phase.finished:
            self.finished += 1
            if self.finished == self.target:
                self.done.set()
        elif self.timing and run.reason is runs.Reason.DISPATCHED:
            self.dispatch_latencies.append(time.perf_counter() - run.queued_at)
        elif self.watch and run.phase is runs.Phase.RUNNING and run.run_id in self.watch:
            self.started_at[run.run_id] = time.perf_counter()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(options: argparse.Namespace) -> int:
    store = CountingStore()
    service = serving.DirectiveService(
        settings=settings.ServiceSettings(port=0, token=TOKEN, finished_runs_kept=1_000),
        store=store,
        authenticator=authenticating.SharedTokenAuthenticator(TOKEN),
    )
    async with service:
        env = dict(os.environ, WORKPATH_TOKEN=TOKEN, PYTHONPATH=str(REPO))
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workpath",
            "worker",
            "bench.routines",
            "--url",
            service.url,
            "--slots",
            str(options.slots),
            "--worker-id",
            "bench",
            env=env,
            cwd=REPO,
        )
        try:
            await developing.wait_for_workers(service, 1, within=30)
            dispatcher = service.dispatcher
            noop = runs.RunSpec(routine_id=directives.RoutineID("bench.noop"))

            # warm up
            store.target, store.finished = 2_000, 0
            store.done.clear()
            for _ in range(2_000):
                dispatcher.submit(noop)
            await asyncio.wait_for(store.done.wait(), 60)

            # 1. throughput: submit -> completed, many runs in flight
            store.target, store.finished = options.runs, 0
            store.done.clear()
            started = time.perf_counter()
            for _ in range(options.runs):
                dispatcher.submit(noop)
            await asyncio.wait_for(store.done.wait(), 600)
            elapsed = time.perf_counter() - started
            throughput = options.runs / elapsed

            # 2. dispatch latency, idle worker: one run at a time
            store.timing = True
            to_start = []
            store.watch = set()
            for _ in range(options.samples):
                queued = time.perf_counter()
                run = dispatcher.submit(noop)
                store.watch.add(run.run_id)
                await dispatcher.wait_finished(run)
                to_start.append(store.started_at[run.run_id] - queued)
            store.timing = False
            internal = store.dispatch_latencies

            # 3. sub-routine round trip measured inside the parent
            parent = dispatcher.submit(
                runs.RunSpec(routine_id=directives.RoutineID("bench.calls"), params={"count": options.samples})
            )
            await asyncio.wait_for(dispatcher.wait_finished(parent), 120)
            assert parent.phase is runs.Phase.SUCCEEDED, parent.error
            round_trips: list[float] = parent.result
        finally:
            worker.terminate()
            await worker.wait()

    rows = [
        (f"throughput, no-op, 1 worker x {options.slots} slots", f"{throughput:,.0f} routines/s", ">= 20,000/s"),
        ("dispatch latency p50 (queued -> request_start queued)", f"{quantile(internal, 0.5) * 1e6:.1f} µs", ""),
        (
            "dispatch latency p99 (queued -> request_start queued)",
            f"{quantile(internal, 0.99) * 1e6:.1f} µs",
            "<= 1 ms",
        ),
        ("queued -> worker's starting received, p50", f"{quantile(to_start, 0.5) * 1e3:.3f} ms", ""),
        (
            "queued -> worker's starting received, p99",
            f"{quantile(to_start, 0.99) * 1e3:.3f} ms",
            "(upper bound of dispatch latency)",
        ),
        ("sub-routine round trip (ctx.call no-op) p50", f"{statistics.median(round_trips) * 1e3:.3f} ms", "<= 1 ms"),
        ("sub-routine round trip p99", f"{quantile(round_trips, 0.99) * 1e3:.3f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>18}  target")
    print("-" * (width + 36))
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>18}  {target}")
    print(
        f"\n{options.runs:,} runs in {elapsed:.2f}s; {options.samples} latency samples; python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=50)
    parser.add_argument("--samples", type=int, default=2_000)
    sys.exit(cli.run_async(main(parser.parse_args())))
