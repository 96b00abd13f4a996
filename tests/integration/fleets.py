"""Real ``workpath worker`` processes for the integration tests, started against a running service.

>>> (worker,) = await fleet.start("w-1", slots=2)  # spawned, and connected: it said v1.ready
>>> await fleet.spawn("stranger", token="wrong")  # spawned only, for workers not expected to connect
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import sys
from collections.abc import Sequence

from tests import waiting
from workpath import directives
from workpath_operator.service import serving

REPO = pathlib.Path(__file__).resolve().parents[2]
ROUTINES = "tests.integration.routines"
TOKEN = "integration-test-token"
CONNECT_TIMEOUT = 20.0


class WorkerProcess:
    """One worker subprocess; its output goes to a log file."""

    def __init__(self, worker_id: str, process: asyncio.subprocess.Process, log: pathlib.Path) -> None:
        self.worker_id = worker_id
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)

    def pause(self) -> None:
        """SIGSTOP: the process stays connected but answers nothing."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    async def wait(self, timeout: float = 20.0) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class WorkerFleet:
    """Starts worker processes for ``service`` and makes sure none outlives the test."""

    def __init__(self, service: serving.DirectiveService, *, logs: pathlib.Path, token: str = TOKEN) -> None:
        self.service = service
        self.url = service.url
        self.token = token
        self.logs = logs
        self.processes: list[WorkerProcess] = []

    async def start(
        self,
        *worker_ids: str,
        slots: int = 4,
        url: str | None = None,
        modules: Sequence[str] = (ROUTINES,),
        args: Sequence[str] = (),
    ) -> list[WorkerProcess]:
        """Spawn a worker of each ID and wait until all of them are connected; the usual way a test gets workers."""
        workers = [await self.spawn(w, slots=slots, url=url, modules=modules, args=args) for w in worker_ids]
        await self.connected(*worker_ids)
        return workers

    async def connected(self, *worker_ids: str, timeout: float = CONNECT_TIMEOUT) -> None:
        """Wait until these workers have said v1.ready (again, after a reconnect) and are connected."""
        sessions = self.service.dispatcher.sessions
        await waiting.eventually(
            lambda: all(w in sessions and sessions[directives.WorkerID(w)].connected for w in worker_ids),
            timeout=timeout,
            what=f"workers {worker_ids} to connect",
        )

    async def spawn(
        self,
        worker_id: str,
        *,
        slots: int = 4,
        url: str | None = None,
        token: str | None = None,
        modules: Sequence[str] = (ROUTINES,),
        args: Sequence[str] = (),
    ) -> WorkerProcess:
        env = dict(os.environ)
        env["WORKPATH_TOKEN"] = self.token if token is None else token
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log = self.logs / f"{worker_id}.log"
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "workpath",
                "worker",
                *modules,
                "--url",
                url or self.url,
                "--slots",
                str(slots),
                "--worker-id",
                worker_id,
                "--log-level",
                "DEBUG",
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )
        worker = WorkerProcess(worker_id, process, log)
        self.processes.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self.processes:
            worker.resume()
            worker.signal(signal.SIGKILL)
        for worker in self.processes:
            with contextlib.suppress(ProcessLookupError):
                await asyncio.wait_for(worker.process.wait(), 10)
