"""One pod on the process-kubelet: its volumes, its first container as a local process, and its status."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from typing import Any

import kubernetes.client
import urllib3

from tests.cluster import envvars, errors, mounting, podfields, probing, processes, rawapi, references, timestamps

logger = logging.getLogger(__name__)


START_ERROR_CODE = 128
"""The exit code reported for a process that could not be started (as container runtimes do)."""


@dataclasses.dataclass(frozen=True)
class PodProcess:
    """What a test can learn about a pod's process (a snapshot)."""

    namespace: str
    name: str
    uid: str
    node: str
    log_path: pathlib.Path
    """The process's stdout and stderr, interleaved."""
    pid: int | None
    """None until the process started (or if it never could)."""
    returncode: int | None
    """None while it runs; negative: killed by that signal."""
    signals: tuple[str, ...]
    """The signals the kubelet sent it, in order, e.g. ``("SIGTERM",)``."""


@dataclasses.dataclass(frozen=True)
class RunnerSettings:
    """What every pod of one kubelet shares."""

    root: pathlib.Path
    base_env: Mapping[str, str]
    """The environment a process starts from (the pod's variables are laid over it)."""
    service_env: Mapping[str, str]
    """KUBERNETES_SERVICE_HOST and the like, visible to $(VAR) expansion as in a real pod."""
    retry_interval: float = 1.0
    """How often to retry a pod whose Secret, ConfigMap or ServiceAccount is missing."""


@dataclasses.dataclass(frozen=True)
class _Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: pathlib.Path


class PodRunner:
    """Runs one pod's first container in a thread of its own: prepare, start, report, wait, report."""

    def __init__(self, pod: dict[str, Any], *, api: rawapi.RawApi, settings: RunnerSettings) -> None:
        metadata = pod["metadata"]
        self.namespace: str = metadata["namespace"]
        self.name: str = metadata["name"]
        self.uid: str = metadata["uid"]
        self.node: str = pod["spec"]["nodeName"]
        self.directory = settings.root / "pods" / self.namespace / f"{self.name}-{self.uid[:8]}"
        self._pod = pod
        self._container: dict[str, Any] = pod["spec"]["containers"][0]
        self.log_path = self.directory / "logs" / f"{self._container['name']}.log"
        self._settings = settings
        self._api = api
        self._path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        self._refs = references.References(api)
        self._lock = threading.Lock()
        self._interrupted = threading.Event()
        self._process: processes.ManagedProcess | None = None
        self._started_at: datetime.datetime | None = None
        self._signals: list[str] = []
        self._timers: list[threading.Timer] = []
        self._deleting = False
        self._detached = False
        self._finished = False
        self._thread = threading.Thread(target=self._run, name=f"pod {self.namespace}/{self.name}", daemon=True)

    # -- control, from the kubelet's thread -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_deletion(self, grace_seconds: float) -> None:
        """The pod is terminating: stop the process gracefully, then force-delete the pod."""
        with self._lock:
            if self._deleting:
                return
            self._deleting = True
            finished = self._finished
        self._interrupted.set()
        if finished:
            self._force_delete()
        else:
            self._terminate(grace_seconds)

    def detach(self, grace_seconds: float) -> None:
        """Stop the process and make no more API calls (the pod is gone, or the kubelet stops)."""
        with self._lock:
            self._detached = True
        self._interrupted.set()
        self._terminate(grace_seconds)

    def join(self, timeout: float) -> bool:
        """Wait for the runner's thread to end; whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def snapshot(self) -> PodProcess:
        with self._lock:
            process = self._process
            return PodProcess(
                namespace=self.namespace,
                name=self.name,
                uid=self.uid,
                node=self.node,
                log_path=self.log_path,
                pid=process.pid if process else None,
                returncode=process.returncode if process else None,
                signals=tuple(self._signals),
            )

    def _terminate(self, grace_seconds: float) -> None:
        """SIGTERM the process (once) if it runs, and SIGKILL it after ``grace_seconds``."""
        with self._lock:
            process = self._process
            if process is None or process.returncode is not None:
                return
            if "SIGTERM" not in self._signals:
                self._signals.append("SIGTERM")
                process.signal(signal.SIGTERM)
            timer = threading.Timer(grace_seconds, self._kill, args=(process,))
            timer.daemon = True
            timer.start()  # Under the lock, so that _finish() finds only started timers to join.
            self._timers.append(timer)

    def _kill(self, process: processes.ManagedProcess) -> None:
        with self._lock:
            if process.returncode is not None or "SIGKILL" in self._signals:
                return
            self._signals.append("SIGKILL")
        process.signal(signal.SIGKILL)

    # -- the pod's life, in the runner's thread ----------------------------------------------------------

    def _run(self) -> None:
        returncode: int | None = None
        try:
            launch = self._prepare()
            if launch is not None:
                returncode = self._execute(launch)
        except Exception:
            logger.exception("process-kubelet: pod %s/%s failed unexpectedly.", self.namespace, self.name)
        finally:
            self._finish(returncode)

    def _prepare(self) -> _Launch | None:
        """The process to start; None if the pod cannot run (reported) or is deleted while waiting for refs."""
        reported = False
        while not self._interrupted.is_set():
            try:
                return self._launch()
            except errors.MissingReferenceError as e:
                if not reported:  # Like the kubelet: wait for the reference to appear, and say so once.
                    self._report(self._waiting_status(e.reason, str(e)))
                    reported = True
            except errors.PodSpecError as e:
                logger.error("process-kubelet cannot run pod %s/%s: %s", self.namespace, self.name, e)
                self._report(self._waiting_status(e.reason, str(e)))
                return None
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as e:
                logger.warning("process-kubelet: preparing pod %s/%s (will retry): %r", self.namespace, self.name, e)
            self._interrupted.wait(self._settings.retry_interval)
        return None

    def _launch(self) -> _Launch:
        container = self._container
        volumes = mounting.materialize(self._pod, root=self.directory / "volumes", refs=self._refs)
        paths = mounting.container_mounts(container, volumes)
        defined = envvars.container_environment(
            self._pod, container, refs=self._refs, service_env=self._settings.service_env
        )
        env = dict(self._settings.base_env) | {"HOSTNAME": self.name}
        env |= {name: paths.rewrite(value) for name, value in defined.items()}
        command = container.get("command") or []
        if not command:
            raise errors.PodSpecError(
                f"container {container['name']!r} has no command: the process-kubelet cannot run an image's "
                "entrypoint, so give the container a `command`."
            )
        argv = [paths.rewrite(envvars.expand(arg, defined)) for arg in [*command, *(container.get("args") or [])]]
        argv[0] = _executable(argv[0], search_path=env.get("PATH", ""))
        working_dir = pathlib.Path(paths.rewrite(container.get("workingDir") or str(self.directory)))
        return _Launch(argv=argv, env=env, cwd=working_dir if working_dir.is_dir() else self.directory)

    def _execute(self, launch: _Launch) -> int | None:
        with self._lock:
            if self._deleting or self._detached:
                return None
            self._started_at = timestamps.now()
            try:
                # Started from this thread, which outlives the process: see processes.die_with_parent_prefix().
                self._process = process = processes.ManagedProcess.start(
                    f"pod {self.namespace}/{self.name}",
                    launch.argv,
                    log_path=self.log_path,
                    env=launch.env,
                    cwd=launch.cwd,
                )
            except OSError as e:
                start_error: OSError | None = e
            else:
                start_error = None
        if start_error is not None:  # As a runtime reports a container that could not start.
            logger.error("process-kubelet cannot start pod %s/%s: %s", self.namespace, self.name, start_error)
            self._report(self._terminated_status(START_ERROR_CODE, reason="StartError", message=str(start_error)))
            return None
        probe = self._container.get("readinessProbe")
        self._report(self._running_status(ready=probe is None))
        if probe is not None:
            self._await_readiness(process, probe)
        return process.popen.wait()

    def _await_readiness(self, process: processes.ManagedProcess, probe: dict[str, Any]) -> None:
        """Probe until the container is ready (then report it), it exits, or the pod is being deleted."""
        delay = probing.initial_delay(probe)
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=delay)
                return
            if self._interrupted.is_set():
                return
            if probing.succeeds(probe, self._container):
                self._report(self._running_status(ready=True))
                return
            delay = probing.period(probe)

    def _finish(self, returncode: int | None) -> None:
        with self._lock:
            self._finished = True
            deleting, detached, timers, process = self._deleting, self._detached, list(self._timers), self._process
        for timer in timers:
            timer.cancel()
            timer.join()
        if process is not None:  # Like a container's cgroup: nothing it spawned outlives it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if detached:
            return
        if deleting:
            self._force_delete()
        elif returncode is not None:
            self._report(self._terminated_status(returncode))

    # -- talking to the API ------------------------------------------------------------------------------

    def _report(self, body: dict[str, Any]) -> None:
        """Patch the pod's status (only this very pod: its uid is a precondition)."""
        with self._lock:
            if self._detached:
                return
        body = {"metadata": {"uid": self.uid}} | body
        try:
            self._api.patch(f"{self._path}/status", body, content_type=rawapi.STRATEGIC_MERGE_PATCH)
        except kubernetes.client.ApiException as e:
            if e.status not in (404, 409):  # Gone, or replaced by a namesake: nothing to report to.
                logger.warning("process-kubelet: status of pod %s/%s: %s", self.namespace, self.name, e)
        except urllib3.exceptions.HTTPError as e:
            logger.warning("process-kubelet: status of pod %s/%s: %r", self.namespace, self.name, e)

    def _force_delete(self) -> None:
        with self._lock:
            if self._detached:
                return
        force_delete(self._api, self._pod)

    # -- statuses ----------------------------------------------------------------------------------------

    def _waiting_status(self, reason: str, message: str) -> dict[str, Any]:
        return self._status("Pending", ready=False, state={"waiting": {"reason": reason, "message": message}})

    def _running_status(self, *, ready: bool) -> dict[str, Any]:
        assert self._started_at is not None
        return self._status("Running", ready=ready, state={"running": {"startedAt": self._started_at_text()}})

    def _terminated_status(
        self, returncode: int, *, reason: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        terminated: dict[str, Any] = {
            "exitCode": returncode if returncode >= 0 else 128 - returncode,
            "reason": reason or ("Completed" if returncode == 0 else "Error"),
            "startedAt": self._started_at_text(),
            "finishedAt": timestamps.rfc3339(timestamps.now()),
        }
        if returncode < 0:
            terminated["signal"] = -returncode
        if message:
            terminated["message"] = message
        if container_id := self._container_id():
            terminated["containerID"] = container_id
        phase = "Succeeded" if returncode == 0 else "Failed"
        return self._status(phase, ready=False, state={"terminated": terminated})

    def _status(self, phase: str, *, ready: bool, state: dict[str, Any]) -> dict[str, Any]:
        """A pod status in which every container has ``state``: only the first one runs; the others mirror it."""
        now = timestamps.rfc3339(timestamps.now())
        conditions = {
            "PodScheduled": True,
            "PodReadyToStartContainers": True,
            "Initialized": True,
            "ContainersReady": ready,
            "Ready": ready,
        }
        container_id = self._container_id()
        statuses = [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": ready,
                "started": "running" in state,
                "restartCount": 0,
                "state": state,
            }
            | ({"containerID": container_id} if container_id else {})
            for container in self._pod["spec"]["containers"]
        ]
        ips = [{"ip": podfields.POD_IP}]
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": podfields.POD_IP,
            "hostIPs": ips,
            "podIP": podfields.POD_IP,
            "podIPs": ips,
            "startTime": self._started_at_text(),
            "conditions": [
                {"type": kind, "status": str(value), "lastTransitionTime": now} for kind, value in conditions.items()
            ],
            "containerStatuses": statuses,
        }
        return {"status": status}

    def _started_at_text(self) -> str:
        return timestamps.rfc3339(self._started_at or timestamps.now())

    def _container_id(self) -> str | None:
        process = self._process
        return f"process://{process.pid}" if process else None


def _executable(name: str, *, search_path: str) -> str:
    """The local file to run for a container's ``command[0]``.

    A bare name is looked up on the process's PATH (the venv's bin first, so ``workpath`` is the project's CLI).
    An absolute path that does not exist here (it was meant for an image) falls back to its basename on PATH.
    """
    if "/" in name and os.access(name, os.X_OK):
        return name
    found = shutil.which(os.path.basename(name), path=search_path)
    if found is None:
        raise errors.PodSpecError(f"executable {name!r} not found (PATH={search_path}).")
    return found


def force_delete(api: rawapi.RawApi, pod: dict[str, Any]) -> None:
    """Delete the pod at once (grace period 0), as the kubelet does once its containers are gone.

    Only this very pod (its uid is a precondition); a pod already gone or replaced is fine.
    """
    metadata = pod["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    options = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": metadata["uid"]},
    }
    try:
        api.delete(f"/api/v1/namespaces/{namespace}/pods/{name}", options)
    except kubernetes.client.ApiException as e:
        if e.status not in (404, 409):
            logger.warning("process-kubelet: deleting pod %s/%s: %s", namespace, name, e)
    except urllib3.exceptions.HTTPError as e:
        logger.warning("process-kubelet: deleting pod %s/%s: %r", namespace, name, e)
