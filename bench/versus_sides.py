"""What ``bench.versus`` asks of each side (workpath, Celery): run one workload, say how long it took."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import glob
import os
import pathlib
import signal
import socket
import sys
from typing import Protocol


class Workload(enum.StrEnum):
    """The workloads, the same on both sides."""

    THROUGHPUT = "throughput"
    """N no-op runs, all submitted, then all awaited."""

    LATENCY = "latency"
    """N no-op runs one at a time, each submitted and awaited before the next."""

    FANOUT = "fanout"
    """One parent that calls N no-op children and waits for them."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One repetition of one workload on one side."""

    seconds: float
    """Wall time from the first submission to the last result, in the client."""

    samples: tuple[float, ...] = ()
    """Latency: the seconds of each round trip. Throughput: one, the seconds until the last run was submitted."""


class Side(Protocol):
    """A started system under test, with its client."""

    name: str
    versions: dict[str, str]

    async def run(self, workload: Workload, count: int) -> Outcome: ...


async def settle(*, window: float = 0.05, quiet: int = 2, busy: float = 0.02, within: float = 5.0) -> float:
    """Wait until every process this one started (and theirs) is idle: under ``busy`` of a CPU over ``quiet``
    windows of ``window`` seconds in a row; give up after ``within``, saying so. Return the seconds waited.

    Both sides' servers and clients are children of the bench, so this covers what either side may still be doing
    after its last result (Celery's worker acknowledging, workpath's service dropping finished runs).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    before = _cpu_seconds(_descendants(os.getpid()))
    if not before:
        print("settle: no child process to watch; starting at once", file=sys.stderr)
        return 0.0
    calm = 0
    while calm < quiet:
        if loop.time() - started > within:
            print(f"settle: still busy after {within:g} s; starting anyway", file=sys.stderr)
            break
        await asyncio.sleep(window)
        now = _cpu_seconds(_descendants(os.getpid()))
        # Only the processes seen both times: one that ended meanwhile takes its CPU time with it.
        used = sum(max(0.0, now[pid] - before[pid]) for pid in now.keys() & before.keys())
        calm = calm + 1 if used < busy * window else 0
        before = now
    return loop.time() - started


def _descendants(pid: int) -> list[int]:
    """The processes under ``pid``, children first, then theirs."""
    found: list[int] = []
    parents = [pid]
    while parents:
        children: list[int] = []
        for parent in parents:
            for task in glob.glob(f"/proc/{parent}/task/*/children"):
                with contextlib.suppress(OSError):
                    children.extend(int(child) for child in pathlib.Path(task).read_text().split())
        found.extend(children)
        parents = children
    return found


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time the threads of each of ``pids`` have run, in seconds (``schedstat``: nanoseconds, not clock ticks)."""
    seconds = {}
    for pid in pids:
        total = 0
        for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(pathlib.Path(stat).read_text().split()[0])
        seconds[pid] = total / 1e9
    return seconds


def free_port() -> int:
    """A port free on 127.0.0.1 now (a server started right after gets it, barring a race nobody runs here)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def stop_process(process: asyncio.subprocess.Process, *, within: float) -> None:
    """SIGTERM ``process`` (a graceful stop), SIGKILL it when it is still there after ``within`` seconds."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
