"""What ``bench.versus`` asks of each side (workpath, Celery): run one workload, say how long it took."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import signal
import socket
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
