"""The operator and its workers as real processes, for the operator tests on the test control plane.

>>> with operators.Harness(k8s_cluster, k8s_namespace, tmp_path) as harness:
...     harness.start_operator()
...     harness.start_worker("w1", modules=["examples.reports"])

Tests get one from the ``harness`` fixture (``tests/kube/conftest.py``), or an operator already started and ready
from the ``operator`` fixture.

The operator is ``python -m workpath_operator`` serving one namespace, with a shared token for the worker
subprocesses (TokenReview stays on as well), short heartbeats and a short settle time after a restart. Every
process is killed when the ``with`` block ends; if the block failed, the tails of their logs are printed.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import types
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Self

from tests.cluster import controlplane, processes, waiting

REPO = pathlib.Path(__file__).resolve().parents[2]
WORKLOAD = "tests.kube.workload"
STOP_TIMEOUT = 10.0

#: Service settings that make the tests quick: restarts settle in 3 s, lost workers are noticed in ~1.5 s.
FAST = (
    "--heartbeat-interval",
    "0.5",
    "--heartbeat-misses",
    "3",
    "--reconnect-grace",
    "10",
    "--settle-seconds",
    "3",
)


class Process:
    """A subprocess whose output goes to a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], log: pathlib.Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, SIGKILL after ``timeout``; the exit code."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.wait(timeout=STOP_TIMEOUT)


class OperatorProcess(Process):
    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], log: pathlib.Path, port: int) -> None:
        super().__init__(name, argv, env=env, log=log)
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/v1/workers"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until ``/readyz`` answers: the Routines are loaded and their runs restored."""

        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"the operator exited with {self.popen.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        waiting.wait_for(ready, timeout=timeout, what=f"operator {self.name} to be ready")


class Harness:
    """An operator (or several in turn) and workers for one test namespace; see the module's docstring."""

    def __init__(self, cluster: controlplane.Cluster, namespace: str, workdir: pathlib.Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.workdir = workdir
        self.token = secrets.token_urlsafe(16)
        self.port = processes.free_port()
        self.url = f"ws://127.0.0.1:{self.port}/v1/workers"
        self.processes: list[Process] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        for process in reversed(self.processes):
            if process.running:
                process.stop(timeout=5.0) if isinstance(process, OperatorProcess) else process.kill()
        if exc is not None:
            for title, tail in self.logs():
                print(f"----- {title} -----")
                print(tail)

    def logs(self, lines: int = 120) -> list[tuple[str, str]]:
        """(title, tail of its log) of every process, for a failed test's report."""
        return [
            (f"{process.name} (pid {process.pid}, exit {process.popen.returncode})", process.tail(lines))
            for process in self.processes
        ]

    def env(self, kubeconfig: pathlib.Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "WORKPATH_"))}
        env["KUBECONFIG"] = str(kubeconfig or self.cluster.kubeconfig)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_operator(
        self,
        *,
        kubeconfig: pathlib.Path | None = None,
        shared_token: bool = True,
        args: Sequence[str] = (),
        namespaced: bool = True,
        wait: bool = True,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> OperatorProcess:
        """``python -m workpath_operator --namespace NS`` on this harness's port (the same for every operator), or
        on ``port`` (replicas running at once need a port each, behind something on the harness's port).

        ``namespaced=False`` leaves ``--namespace`` out (give ``--all-namespaces`` in ``args``); ``env`` adds to its
        environment (the downward API's POD_NAME and POD_NAMESPACE of a pod standing in for it, say).
        """
        port = self.port if port is None else port
        name = f"operator-{sum(isinstance(p, OperatorProcess) for p in self.processes) + 1}"
        argv = [
            sys.executable,
            "-m",
            "workpath_operator",
            *(("--namespace", self.namespace) if namespaced else ()),
            "--port",
            str(port),
            "--log-level",
            "debug",
            *FAST,
            *((f"--token={self.token}",) if shared_token else ()),
            *args,
        ]
        environment = self.env(kubeconfig) | dict(env or {})
        operator = OperatorProcess(name, argv, env=environment, log=self.workdir / f"{name}.log", port=port)
        self.processes.append(operator)
        if wait:
            operator.wait_ready()
        return operator

    def start_worker(self, worker_id: str, *, modules: Sequence[str] = (WORKLOAD,), slots: int = 4) -> Process:
        """``workpath worker MODULES`` with the shared token, reconnecting quickly."""
        argv = [
            sys.executable,
            "-m",
            "workpath",
            "worker",
            *modules,
            "--url",
            self.url,
            f"--token={self.token}",
            "--slots",
            str(slots),
            "--worker-id",
            worker_id,
            "--backoff-cap",
            "0.5",
            "--log-level",
            "debug",
        ]
        worker = Process(worker_id, argv, env=self.env(), log=self.workdir / f"{worker_id}.log")
        self.processes.append(worker)
        return worker
