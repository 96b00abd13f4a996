"""Real ``workpath worker`` processes for the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import sys
from collections.abc import Sequence

REPO = pathlib.Path(__file__).resolve().parents[2]
ROUTINES = "tests.integration.routines"


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
    """Starts worker processes and makes sure none outlives the test."""

    def __init__(self, *, url: str, token: str, logs: pathlib.Path) -> None:
        self.url = url
        self.token = token
        self.logs = logs
        self.processes: list[WorkerProcess] = []

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
