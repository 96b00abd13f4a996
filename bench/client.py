"""Benchmark of workpath as a client program sees it: ``workpath.Client`` in this process, the service elsewhere.

    .venv/bin/python -m bench.client [--runs 20000] [--samples 1000] [--children 1000] [--json PATH]

Starts ``workpath dev bench.routines --workers 1 --slots 50`` (the service and one worker process) in a
temporary directory, connects with ``workpath.Client.local`` from this process and measures:

- throughput: ``--runs`` no-op runs, all submitted, then all awaited (target >= 16,000 runs/s);
- sequential latency: ``--samples`` no-op runs one at a time on an idle worker, submit -> result (p99 <= 0.5 ms);
- fan-out: one parent run that calls ``--children`` no-op sub-routines at once and waits for them.

The workloads (:func:`throughput`, :func:`latency`, :func:`fanout`) take an open client and are imported by the
side-by-side benchmark; :func:`local_service` starts the service they run against.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import platform
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence

import workpath
from workpath_operator import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
NOOP = "bench.noop"
FANOUT = "bench.fanout"


# ---------------------------------------------------------------------- workloads


async def throughput(client: workpath.Client, *, runs: int) -> float:
    """No-op runs per second, end to end: ``runs`` submitted at once, then all awaited."""
    spec = client.spec(NOOP)
    started = time.perf_counter()
    handles = await client.submit_many([spec] * runs)
    await client.results(handles)
    return runs / (time.perf_counter() - started)


async def latency(client: workpath.Client, *, runs: int) -> list[float]:
    """Seconds from submit to result of each of ``runs`` no-op runs, one at a time."""
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        await client.run(NOOP)
        durations.append(time.perf_counter() - started)
    return durations


async def fanout(client: workpath.Client, *, children: int) -> float:
    """Seconds for a parent run that calls ``children`` no-op sub-routines at once and waits for them."""
    started = time.perf_counter()
    done = await client.run(FANOUT, children=children)
    elapsed = time.perf_counter() - started
    assert done == children, done
    return elapsed


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------- the service


@contextlib.asynccontextmanager
async def local_service(*, workers: int = 1, slots: int = 50) -> AsyncIterator[pathlib.Path]:
    """``workpath dev bench.routines`` in a process of its own; yields its state file (for ``Client.local``)."""
    with tempfile.TemporaryDirectory(prefix="workpath-bench-") as folder:
        state = pathlib.Path(folder) / ".workpath" / "dev.json"
        env = dict(os.environ, PYTHONPATH=str(REPO), WORKPATH_TOKEN=secrets.token_urlsafe(16), WORKPATH_PORT="0")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workpath",
            "dev",
            "bench.routines",
            "--workers",
            str(workers),
            "--slots",
            str(slots),
            cwd=folder,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            while b"service on" not in (line := await asyncio.wait_for(process.stderr.readline(), 60)):
                if not line:
                    raise RuntimeError(f"workpath dev exited with {await process.wait()}")
            yield state
        finally:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.communicate(), 30)
            if process.returncode is None:
                process.kill()
                await process.wait()


# ---------------------------------------------------------------------- main


async def measure(options: argparse.Namespace) -> dict[str, float]:
    async with local_service(slots=options.slots) as state, workpath.Client.local(state_file=state) as client:
        await throughput(client, runs=min(options.runs, 5_000))  # warm up both processes
        await latency(client, runs=200)
        rate = await throughput(client, runs=options.runs)
        durations = await latency(client, runs=options.samples)
        fanned = await fanout(client, children=options.children)
    return {
        "throughput_runs_per_second": rate,
        "latency_p50_seconds": quantile(durations, 0.5),
        "latency_p99_seconds": quantile(durations, 0.99),
        "fanout_seconds": fanned,
    }


def report(figures: dict[str, float], options: argparse.Namespace) -> None:
    import rich.console
    import rich.table

    table = rich.table.Table(
        title=f"workpath.Client against workpath dev (1 worker x {options.slots} slots): {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_row(
        f"throughput, {options.runs:,} no-op runs", f"{figures['throughput_runs_per_second']:,.0f} runs/s", ">= 16,000"
    )
    table.add_row("sequential latency p50", f"{figures['latency_p50_seconds'] * 1e3:.3f} ms", "")
    table.add_row(
        f"sequential latency p99 ({options.samples:,} runs)",
        f"{figures['latency_p99_seconds'] * 1e3:.3f} ms",
        "<= 0.5 ms",
    )
    table.add_row(f"fan-out, 1 parent x {options.children:,} children", f"{figures['fanout_seconds'] * 1e3:.1f} ms", "")
    rich.console.Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--children", type=int, default=1_000)
    parser.add_argument("--slots", type=int, default=50)
    parser.add_argument("--json", type=pathlib.Path, default=None, metavar="PATH", help="write the figures here")
    options = parser.parse_args(argv)

    async def run() -> int:
        figures = await measure(options)
        report(figures, options)
        if options.json is not None:
            machine = {"cores": os.cpu_count(), "python": platform.python_version()}
            options.json.write_text(json.dumps({"machine": machine, **figures}, indent=2) + "\n")
        return 0

    return cli.run_async(run())


if __name__ == "__main__":
    sys.exit(main())
