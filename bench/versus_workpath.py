"""The workpath side of ``bench.versus``: ``workpath dev`` in its own processes, ``workpath.Client`` in this one.

The service is what a user starts with ``workpath dev bench.versus_routines --workers 1 --slots 50``: the
directive service in one process, one ``workpath worker`` process with 50 slots. It is started in a temporary
folder (where it writes ``.workpath/dev.json``) with a token of its own, and stopped at the end. The client
runs in the bench process, on uvloop when installed, as ``workpath run`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from importlib import metadata

import workpath
from bench import versus_sides

REPO = pathlib.Path(__file__).resolve().parents[1]

#: Seconds ``workpath dev`` may take to say its worker is connected.
START_TIMEOUT = 60.0

#: Seconds one workload may take before the bench gives up on it.
WORKLOAD_TIMEOUT = 600.0

#: What ``workpath dev`` prints on stderr once its workers are connected.
READY_LINE = b"workpath dev: service on "


class WorkpathSide:
    """A started ``workpath dev`` and a connected :class:`workpath.Client`."""

    name = "workpath"

    def __init__(self, client: workpath.Client, *, versions: dict[str, str], service_pid: int) -> None:
        self._client = client
        self.versions = versions
        self._service_pid = service_pid

    def pids(self) -> dict[str, int]:
        """The service's process and its worker's (for a profiler to attach to)."""
        children = pathlib.Path(f"/proc/{self._service_pid}/task/{self._service_pid}/children").read_text().split()
        return {"service": self._service_pid} | {f"worker-{n}": int(pid) for n, pid in enumerate(children, 1)}

    async def run(self, workload: versus_sides.Workload, count: int) -> versus_sides.Outcome:
        match workload:
            case versus_sides.Workload.THROUGHPUT:
                coroutine = self._throughput(count)
            case versus_sides.Workload.LATENCY:
                coroutine = self._latency(count)
            case versus_sides.Workload.FANOUT:
                coroutine = self._fanout(count)
        started = time.perf_counter()
        samples = await asyncio.wait_for(coroutine, WORKLOAD_TIMEOUT)
        return versus_sides.Outcome(seconds=time.perf_counter() - started, samples=tuple(samples))

    async def _throughput(self, count: int) -> list[float]:
        """All submitted in one ``submit_many``, then each awaited."""
        started = time.perf_counter()
        noop = self._client.spec("versus.noop")
        handles = await self._client.submit_many([noop] * count)
        submitted = time.perf_counter() - started
        for handle in handles:
            await handle
        return [submitted]

    async def _latency(self, count: int) -> list[float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await self._client.run("versus.noop")
            samples.append(time.perf_counter() - started)
        return samples

    async def _fanout(self, count: int) -> list[float]:
        children = await self._client.run("versus.fanout", count=count)
        if children != count:
            raise RuntimeError(f"the fan-out gathered {children} children, not {count}")
        return []


@contextlib.asynccontextmanager
async def started(*, slots: int) -> AsyncIterator[WorkpathSide]:
    """``workpath dev`` (1 worker x ``slots``) up, a client connected to it, until the block ends."""
    with tempfile.TemporaryDirectory(prefix="workpath-versus-") as folder:
        token = secrets.token_urlsafe(24)
        async with workpath_dev(pathlib.Path(folder), slots=slots, token=token) as (url, pid):
            client = workpath.Client.for_service(url, token=token)
            async with client:
                loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
                versions = {"workpath": metadata.version("workpath"), "client loop": loop}
                yield WorkpathSide(client, versions=versions, service_pid=pid)


@contextlib.asynccontextmanager
async def workpath_dev(folder: pathlib.Path, *, slots: int, token: str) -> AsyncIterator[tuple[str, int]]:
    """``workpath dev bench.versus_routines`` started in ``folder``; yields its URL and process ID once ready."""
    env = dict(os.environ, WORKPATH_TOKEN=token)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workpath",
        "dev",
        "bench.versus_routines",
        "--workers",
        "1",
        "--slots",
        str(slots),
        "--port",
        "0",
        env=env,
        cwd=folder,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    copying: asyncio.Task[None] | None = None
    try:
        assert process.stderr is not None
        await asyncio.wait_for(wait_for_line(process.stderr, READY_LINE), START_TIMEOUT)
        copying = asyncio.create_task(copy_lines(process.stderr), name="workpath-versus-dev-stderr")
        state = json.loads((folder / ".workpath" / "dev.json").read_text())
        yield str(state["url"]), process.pid
    finally:
        await versus_sides.stop_process(process, within=20)
        if copying is not None:
            copying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await copying


async def wait_for_line(stream: asyncio.StreamReader, prefix: bytes) -> None:
    """Read lines until one starts with ``prefix``; an error with what was read when the stream ends first."""
    seen = []
    while line := await stream.readline():
        if line.startswith(prefix):
            return
        seen.append(line)
    sys.stderr.buffer.write(b"".join(seen))
    raise RuntimeError("workpath dev exited before its worker connected; its output is above")


async def copy_lines(stream: asyncio.StreamReader) -> None:
    """Pass the service's later output on to our stderr but its INFO lines, so that its pipe never fills."""
    while line := await stream.readline():
        if b" INFO " not in line:
            sys.stderr.buffer.write(line)
