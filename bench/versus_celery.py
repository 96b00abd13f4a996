"""The Celery side of ``bench.versus``: its own redis-server, a Celery worker, and the Celery client process.

Everything Celery runs in the virtualenv ``scripts/setup-celery-bench.sh`` makes (Celery is no dependency of
workpath's), so the client is a separate long-lived process (``bench.celery_driver``) that this module drives
over a pipe; the bench process only waits while it works. Redis listens on 127.0.0.1 on a free port, keeps
nothing on disk, and is stopped with the worker at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from bench import versus_sides

REPO = pathlib.Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO / "scripts" / "setup-celery-bench.sh"
DEFAULT_VENV = pathlib.Path.home() / ".cache" / "workpath" / "bench-celery-venv"

#: Seconds the set-up script may take (a first run installs redis-server and Celery).
SETUP_TIMEOUT = 900.0

#: Seconds the Celery side may take to come up (redis answering, the worker consuming).
START_TIMEOUT = 60.0

#: Seconds one workload may take before the bench gives up on it.
WORKLOAD_TIMEOUT = 600.0

SETUP_FAILURES = {
    2: "redis-server is not installed and could not be (see the set-up script's message above)",
    3: "Celery could not be installed into its virtualenv (see the set-up script's message above)",
}


@dataclasses.dataclass(frozen=True)
class CelerySettings:
    """How the Celery side is set up: the choices a user tuning Celery for short tasks would make."""

    venv: pathlib.Path = DEFAULT_VENV
    pool: str = "prefork"
    """Celery's worker pool: prefork (processes; the fastest here for no-op tasks) or threads."""

    concurrency: int = 50
    """Pool size, matched to workpath's slots."""

    prefetch_multiplier: int = 16
    """Messages reserved per pool slot (Celery's docs: raise it for many short tasks)."""

    def describe(self) -> str:
        return (
            f"{self.pool} pool x {self.concurrency}, prefetch multiplier {self.prefetch_multiplier}, "
            "acks early (default), Redis broker and result backend, JSON, no events/gossip/mingle/heartbeat"
        )


def set_up(settings: CelerySettings) -> str | None:
    """Run the set-up script; None when the Celery side can run, else why it cannot."""
    try:
        done = subprocess.run(
            ["bash", str(SETUP_SCRIPT), sys.executable, str(settings.venv)],
            timeout=SETUP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{SETUP_SCRIPT.name} did not finish in {SETUP_TIMEOUT:.0f}s"
    if done.returncode == 0:
        return None
    return SETUP_FAILURES.get(done.returncode, f"{SETUP_SCRIPT.name} failed with exit code {done.returncode}")


class CelerySide:
    """A started Celery deployment and its client; :meth:`run` runs one workload through the client."""

    name = "Celery"

    def __init__(self, driver: asyncio.subprocess.Process, *, versions: dict[str, str]) -> None:
        self._driver = driver
        self.versions = versions

    async def run(self, workload: versus_sides.Workload, count: int) -> versus_sides.Outcome:
        answer = await self._ask({"workload": workload.value, "count": count}, within=WORKLOAD_TIMEOUT)
        return versus_sides.Outcome(seconds=answer["seconds"], samples=tuple(answer["samples"]))

    async def _ask(self, request: dict[str, Any], *, within: float) -> dict[str, Any]:
        assert self._driver.stdin is not None
        self._driver.stdin.write(json.dumps(request).encode() + b"\n")
        await self._driver.stdin.drain()
        return await read_answer(self._driver, within=within)


async def read_answer(driver: asyncio.subprocess.Process, *, within: float) -> dict[str, Any]:
    """The driver's next JSON line; an error naming the driver's exit when it is gone."""
    assert driver.stdout is not None
    line = await asyncio.wait_for(driver.stdout.readline(), within)
    if not line:
        code = await driver.wait()
        raise RuntimeError(f"the Celery client (bench.celery_driver) exited with code {code}; see its stderr above")
    answer: dict[str, Any] = json.loads(line)
    return answer


@contextlib.asynccontextmanager
async def started(settings: CelerySettings) -> AsyncIterator[CelerySide]:
    """Redis, a Celery worker and the client, up until the block ends; logs in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="workpath-versus-celery-") as folder:
        port = versus_sides.free_port()
        url = f"redis://127.0.0.1:{port}/0"
        env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_CELERY_PREFETCH=str(settings.prefetch_multiplier))
        env["PYTHONPATH"] = str(REPO)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(redis_server(port, folder=pathlib.Path(folder)))
            await stack.enter_async_context(celery_worker(settings, env=env, folder=pathlib.Path(folder)))
            driver = await stack.enter_async_context(celery_driver(settings, env=env))
            ready = await read_answer(driver, within=START_TIMEOUT)
            versions = {"celery": ready["celery"], "redis-py": ready["redis"], "redis-server": redis_version()}
            yield CelerySide(driver, versions=versions)


@contextlib.asynccontextmanager
async def redis_server(port: int, *, folder: pathlib.Path) -> AsyncIterator[None]:
    """``redis-server`` on 127.0.0.1:``port``, nothing saved, stopped at the end."""
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    command += ["--dir", str(folder), "--loglevel", "warning", "--daemonize", "no"]
    with (folder / "redis.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=subprocess.STDOUT)
    try:
        await wait_for_redis(port, process=process)
        yield
    finally:
        await versus_sides.stop_process(process, within=10)


async def wait_for_redis(port: int, *, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PING\r\n")
            pong = await reader.readline()
            writer.close()
            if pong.startswith(b"+PONG"):
                return
        if loop.time() > deadline:
            raise TimeoutError(f"redis-server did not answer on 127.0.0.1:{port} in {START_TIMEOUT:.0f}s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def celery_worker(settings: CelerySettings, *, env: dict[str, str], folder: pathlib.Path) -> AsyncIterator[None]:
    """``celery worker`` in its own process group (prefork children included), stopped warm at the end."""
    command = [str(settings.venv / "bin" / "celery"), "-A", "bench.celery_tasks", "worker"]
    command += ["--pool", settings.pool, "--concurrency", str(settings.concurrency), "--queues", "bench"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "warning"]
    log_path = folder / "celery-worker.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield
    finally:
        await versus_sides.stop_process(process, within=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # prefork children left behind, if any
        if process.returncode not in (0, -signal.SIGTERM):
            sys.stderr.write(log_path.read_text()[-3000:])


@contextlib.asynccontextmanager
async def celery_driver(settings: CelerySettings, *, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """The Celery client process (``bench.celery_driver``); its stderr goes to ours."""
    process = await asyncio.create_subprocess_exec(
        str(settings.venv / "bin" / "python"),
        "-m",
        "bench.celery_driver",
        env=env,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.stdin is not None:
            process.stdin.close()
        await versus_sides.stop_process(process, within=10)


def redis_version() -> str:
    """``redis-server --version``'s ``v=`` field."""
    path = shutil.which("redis-server")
    if path is None:
        return "?"
    text = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    return fields.get("v", "?")
