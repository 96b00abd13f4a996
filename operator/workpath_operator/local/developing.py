"""Local mode, the embedded default: the service, a local run store and worker processes.

``workpath dev MODULE`` starts the directive service with an in-memory (or SQLite)
run store, generates a token for its own workers, spawns N ``workpath worker``
processes and keeps them running. It writes where it listens and the token to
``.workpath/dev.json`` so that ``workpath run`` and ``workpath logs`` in another
terminal find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import secrets
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic

from workpath.clients import targets
from workpath_operator.service import aiotasks, authenticating, dispatching, runs, serving, settings, stores

logger = logging.getLogger("workpath.dev")

#: Where the URL and token are written for ``workpath run`` / ``workpath logs`` (and ``Client.local``), which read
#: it at the same place.
STATE_FILE = targets.STATE_FILE

#: Seconds workers get to finish their runs when ``workpath dev`` stops.
DRAIN_TIMEOUT = 10.0


class LocalSettings(settings.ServiceSettings):
    """The settings of ``workpath dev``: the directive service's, plus the local workers'.

    Settings rather than plain arguments, so that ``--workers``, ``--slots`` and ``--db``
    are read, checked, worded and shown by ``--help`` as every other setting is, with
    their ``WORKPATH_*`` variables (``WORKPATH_SLOTS`` means what it means to a worker).
    The modules are arguments of the command, not settings.
    """

    workers: int = pydantic.Field(default=2, ge=1)
    """Worker processes to start."""

    slots: int = pydantic.Field(default=10, ge=1, le=10_000)
    """Concurrency slots of each worker."""

    db: str | None = None
    """SQLite file to keep runs in across restarts; in memory when not set."""


class LocalWorkers:
    """Worker subprocesses ``dev-1`` ... ``dev-N``, restarted when one dies unexpectedly.

    ``on_exit(worker_id, exit_code)`` is called when one exits unexpectedly, before it is started again: the
    service loses that worker at once (its runs are queued again), as the operator does when a worker's pod
    is gone, rather than waiting out the reconnect grace period for a process that cannot come back.
    """

    def __init__(
        self,
        modules: Sequence[str],
        *,
        settings: LocalSettings,
        url: str,
        token: str,
        on_exit: Callable[[str, int], object],
    ) -> None:
        self._modules = modules
        self._settings = settings
        self._url = url
        self._token = token
        self._on_exit = on_exit
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def processes(self) -> Mapping[str, asyncio.subprocess.Process]:
        """The latest process of each worker, by worker ID."""
        return {_worker_id(index): process for index, process in self._processes.items()}

    async def start(self) -> None:
        for index in range(1, self._settings.workers + 1):
            self._tasks.append(asyncio.create_task(self._keep(index), name=f"workpath-dev-worker-{index}"))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["WORKPATH_TOKEN"] = self._token
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workpath",
            "worker",
            *self._modules,
            "--url",
            self._url,
            "--slots",
            str(self._settings.slots),
            "--worker-id",
            _worker_id(index),
            "--drain-timeout",
            str(DRAIN_TIMEOUT),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def _keep(self, index: int) -> None:
        delay = 0.5
        while not self._stopping:
            process = self._processes[index] = await self._spawn(index)
            code = await process.wait()
            if self._stopping:
                return
            self._on_exit(_worker_id(index), code)
            logger.warning("worker dev-%d exited with code %s; starting it again in %.1fs", index, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        """SIGTERM every worker (they drain), SIGKILL what is left after the drain timeout."""
        self._stopping = True
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        waiting = [p.wait() for p in self._processes.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waiting), DRAIN_TIMEOUT + 5)
        except TimeoutError:
            for process in self._processes.values():
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(p.wait() for p in self._processes.values()))
        await aiotasks.cancel_and_wait(self._tasks)


def _worker_id(index: int) -> str:
    return f"dev-{index}"


async def wait_for_workers(service: serving.DirectiveService, count: int, *, within: float) -> None:
    """Return once ``count`` workers are connected; raise TimeoutError with what is known."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while sum(1 for s in service.dispatcher.workers() if s.connected) < count:
        if loop.time() > deadline:
            connected = sorted(s.worker_id for s in service.dispatcher.workers() if s.connected)
            raise TimeoutError(f"only {len(connected)} of {count} workers connected in {within:g}s: {connected}")
        await asyncio.sleep(0.02)


def run_store(settings: LocalSettings) -> stores.RunStore:
    """Where local mode keeps its runs: in memory (or also in ``--db``), the last ``finished_runs_kept`` finished
    ones with their logs."""
    keep = settings.finished_runs_kept
    return stores.SqliteRunStore(settings.db, keep=keep) if settings.db else stores.MemoryRunStore(keep=keep)


async def serve(
    modules: Sequence[str],
    *,
    settings: LocalSettings,
    run: runs.RunSpec | None = None,
) -> int:
    """Run local mode until interrupted, or (``run`` given) until that one run finishes."""
    token = settings.token or secrets.token_urlsafe(24)
    settings = settings.replace(token=token)
    store = run_store(settings)
    service = serving.DirectiveService(
        settings=settings, store=store, authenticator=authenticating.SharedTokenAuthenticator(token)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with service:
            _write_state(STATE_FILE, service, token)
            workers = LocalWorkers(
                modules, settings=settings, url=service.url, token=token, on_exit=lost(service.dispatcher)
            )
            await workers.start()
            try:
                await wait_for_workers(service, settings.workers, within=60)
                print(
                    f"workpath dev: service on {service.http_url}, {settings.workers} worker(s) x "
                    f"{settings.slots} slots running {', '.join(modules)}",
                    file=sys.stderr,
                )
                if run is not None:
                    finished = service.dispatcher.submit(run)
                    print(f"submitted {run.routine_id} as run {finished.run_id}", file=sys.stderr)
                    waiting = service.dispatcher.wait_finished(finished)
                    stopping = asyncio.ensure_future(stop.wait())
                    either: set[asyncio.Future[Any]] = {waiting, stopping}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if not waiting.done():
                        waiting.cancel()
                        return 130
                    print(render(finished.status()))
                    return 0 if finished.phase is runs.Phase.SUCCEEDED else 1
                print("submit with: workpath run ROUTINE_ID --param key=value   (Ctrl-C stops)", file=sys.stderr)
                await stop.wait()
                return 0
            finally:
                await workers.stop()
                with contextlib.suppress(FileNotFoundError):
                    STATE_FILE.unlink()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def lost(dispatcher: dispatching.Dispatcher) -> Callable[[str, int], bool]:
    """What :class:`LocalWorkers` calls when a worker's process exits: the service loses that worker now."""

    def exited(worker_id: str, code: int) -> bool:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        return dispatcher.lose_worker(worker_id, reason=f"was lost: its process {how}")

    return exited


def _write_state(path: pathlib.Path, service: serving.DirectiveService, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": service.http_url, "workersURL": service.url, "token": token}))
    path.chmod(0o600)


def render(status: runs.RunStatus) -> str:
    """A finished (or running) run, as ``workpath run`` prints it."""
    rows: list[tuple[str, str]] = [
        ("run", status.run_id),
        ("routine", status.routine_id),
        ("phase", status.phase.value),
        ("attempt", str(status.attempt)),
        ("worker", status.worker or "-"),
        ("created", _time(status.created_at)),
        ("started", _time(status.started_at)),
        ("completed", _time(status.completed_at)),
        ("run time", _seconds(status.run_time_seconds)),
        ("round trip", _seconds(status.round_trip_seconds)),
    ]
    if status.subroutines is not None:
        s = status.subroutines
        rows.append(
            (
                "subroutines",
                f"{s.total} total, {s.succeeded} succeeded, {s.failed} failed, {s.running} running",
            )
        )
    if status.error is not None:
        rows.append(("error", f"{status.error.type}: {status.error.message}"))
    elif status.phase is runs.Phase.SUCCEEDED:
        rows.append(("result", json.dumps(status.result)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _time(value: object) -> str:
    return "-" if value is None else value.isoformat()  # type: ignore[attr-defined]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"
