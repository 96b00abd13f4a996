"""The process-kubelet: runs pods as local processes, so that Deployments work without containers.

It plays the scheduler too: unscheduled pods (default scheduler) are bound to the least busy of its nodes whose
labels match the pod's nodeSelector. For each pod bound to one of its nodes it runs the first container's
``command`` + ``args`` as a local process (see :mod:`tests.cluster.podrunning` for env, volumes and paths), and
reports the pod Running and Ready; a process that exits makes the pod Succeeded (exit code 0) or Failed. A pod
being deleted gets SIGTERM, SIGKILL after its grace period (capped), then is force-deleted.

Not done: restarts (restartPolicy is ignored: an exited process ends the pod), init containers, containers
other than the first (reported with the first one's state), exec probes (counted as passing), token refresh.

>>> with ProcessKubelet(cluster).start() as kubelet:
...     ...  # create a Deployment; then kubelet.logs(namespace, pod_name)
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import shutil
import tempfile
import threading
import types
from typing import Any, Self

import kubernetes.client
import urllib3

from tests.cluster import builds, controlplane, errors, nodes, podrunning, rawapi, waiting, watching

logger = logging.getLogger(__name__)

DEFAULT_SCHEDULER = "default-scheduler"
MAX_GRACE_SECONDS = 10.0
"""A pod's terminationGracePeriodSeconds is capped at this, so that a stubborn process cannot stall a test."""


class ProcessKubelet:
    """The kubelet (and scheduler) of some fake nodes: ``ProcessKubelet(cluster).start()``, then :meth:`stop`."""

    def __init__(
        self,
        cluster: controlplane.Cluster,
        *,
        node_names: tuple[str, ...] = ("process-node-1",),
        root: pathlib.Path | None = None,
        max_grace_seconds: float = MAX_GRACE_SECONDS,
        heartbeat_interval: float = 10.0,
    ) -> None:
        self.cluster = cluster
        self.node_names = node_names
        self._own_root = root is None
        self.root = root or pathlib.Path(tempfile.mkdtemp(prefix="workpath-kubelet-"))
        self.max_grace_seconds = max_grace_seconds
        self._client = cluster.api()
        self._api = rawapi.RawApi(self._client)
        self._heartbeat = nodes.NodeHeartbeat(
            self._api, node_names, version=f"{cluster.binaries.version}-process", interval=heartbeat_interval
        )
        self._settings = podrunning.RunnerSettings(
            root=self.root, base_env=_base_env(), service_env=_service_env(cluster.ports.apiserver)
        )
        self._node_labels: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._runners: dict[str, podrunning.PodRunner] = {}  # By pod uid, while the pod exists.
        self._latest: dict[tuple[str, str], podrunning.PodRunner] = {}  # By (namespace, name), kept after deletion.
        self._bindings: dict[str, str] = {}  # Node by pod uid, for the pods this kubelet bound.
        self._listed = threading.Event()
        self._watcher = watching.Watcher(self._api, "/api/v1/pods")
        self._thread = threading.Thread(target=self._watch, name="process-kubelet pods", daemon=True)
        self._stopped = False

    def start(self) -> Self:
        """Register the nodes, start the heartbeat and the pod watch; return once the first list is handled."""
        try:
            self._node_labels = self._heartbeat.register()
            self._heartbeat.start()
            self._thread.start()
            waiting.wait_for(self._listed.is_set, timeout=30, what="the process-kubelet's first list of pods")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, grace_seconds: float = 2.0) -> None:
        """Stop watching, kill every process (SIGTERM, SIGKILL after ``grace_seconds``), join all threads."""
        if self._stopped:
            return
        self._stopped = True
        self._watcher.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._heartbeat.stop()
        with self._lock:
            runners = set(self._latest.values()) | set(self._runners.values())
        for runner in runners:
            runner.detach(grace_seconds)
        stuck = [f"pod {r.namespace}/{r.name}" for r in runners if not r.join(timeout=grace_seconds + 5)]
        self._heartbeat.deregister()
        self._client.close()  # type: ignore[no-untyped-call]
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self._thread.is_alive():
            stuck.append("the pod watch")
        if stuck:
            raise errors.ClusterError(f"process-kubelet: threads did not end: {', '.join(stuck)}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.stop()

    # -- for tests -------------------------------------------------------------------------------------------

    def process(self, namespace: str, name: str) -> podrunning.PodProcess:
        """The latest process of the pod ``namespace/name`` (it may have exited, or the pod be gone)."""
        with self._lock:
            runner = self._latest.get((namespace, name))
        if runner is None:
            raise errors.ClusterError(f"process-kubelet has run no pod {namespace}/{name}.")
        return runner.snapshot()

    def wait_for_process(self, namespace: str, name: str, *, timeout: float = 30.0) -> podrunning.PodProcess:
        """Wait until the pod's process has started; return it."""

        def started() -> podrunning.PodProcess | None:
            with self._lock:
                runner = self._latest.get((namespace, name))
            snapshot = runner.snapshot() if runner else None
            return snapshot if snapshot and snapshot.pid is not None else None

        return waiting.wait_for(started, timeout=timeout, what=f"the process of pod {namespace}/{name}")

    def log_path(self, namespace: str, name: str) -> pathlib.Path:
        """The file with the stdout and stderr of the pod's (latest) process."""
        return self.process(namespace, name).log_path

    def logs(self, namespace: str, name: str) -> str:
        """The output of the pod's (latest) process so far."""
        try:
            return self.log_path(namespace, name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def processes(self, namespace: str | None = None) -> list[podrunning.PodProcess]:
        """The latest process of every pod this kubelet ran (in ``namespace``), including ended ones."""
        with self._lock:
            runners = list(self._latest.values())
        return [runner.snapshot() for runner in runners if namespace in (None, runner.namespace)]

    # -- the pod watch ---------------------------------------------------------------------------------------

    def _watch(self) -> None:
        for event in self._watcher:
            try:
                self._handle(event)
            except Exception:
                logger.exception("process-kubelet: handling a %s event failed.", event.type)
            if event.type == "LISTED":
                self._listed.set()

    def _handle(self, event: watching.WatchEvent) -> None:
        if event.type == "LISTED":
            present = {pod["metadata"]["uid"] for pod in event.object["items"]}
            with self._lock:
                gone = [uid for uid in self._runners if uid not in present]
            for uid in gone:
                self._forget(uid)
            for pod in event.object["items"]:
                self._on_pod(pod)
        elif event.type == "DELETED":
            self._forget(event.object["metadata"]["uid"])
        else:
            self._on_pod(event.object)

    def _on_pod(self, pod: dict[str, Any]) -> None:
        metadata, spec = pod["metadata"], pod["spec"]
        node = spec.get("nodeName")
        if not node:
            if _schedulable(pod):
                self._bind(pod)
            return
        if node not in self.node_names:
            return
        uid = metadata["uid"]
        terminating = metadata.get("deletionTimestamp") is not None
        with self._lock:
            runner = self._runners.get(uid)
            if runner is None and not terminating and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
                runner = podrunning.PodRunner(pod, api=self._api, settings=self._settings)
                self._runners[uid] = self._latest[(runner.namespace, runner.name)] = runner
                runner.start()
        if terminating:
            if runner is not None:
                runner.request_deletion(self._grace_seconds(pod))
            else:  # Never run by this kubelet (or finished before it started): nothing to stop.
                podrunning.force_delete(self._api, pod)

    def _forget(self, uid: str) -> None:
        """The pod is gone from the API (deleted by someone else, or seen gone after a relist)."""
        with self._lock:
            runner = self._runners.pop(uid, None)
            self._bindings.pop(uid, None)
        if runner is not None:
            runner.detach(self.max_grace_seconds)

    def _grace_seconds(self, pod: dict[str, Any]) -> float:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(min(grace, self.max_grace_seconds))

    def _bind(self, pod: dict[str, Any]) -> None:
        selector: dict[str, str] = pod["spec"].get("nodeSelector") or {}
        candidates = [name for name in self.node_names if selector.items() <= self._node_labels.get(name, {}).items()]
        if not candidates:
            return  # As with the real scheduler, it stays Pending.
        with self._lock:
            load = collections.Counter(self._bindings.values())
            load.update(runner.node for uid, runner in self._runners.items() if uid not in self._bindings)
            node = min(candidates, key=lambda name: load[name])
            self._bindings[pod["metadata"]["uid"]] = node
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            self._api.create(f"/api/v1/namespaces/{namespace}/pods/{name}/binding", binding)
        except kubernetes.client.ApiException as e:
            if e.status not in (404, 409):  # Gone, or bound meanwhile.
                logger.warning("process-kubelet: binding pod %s/%s to %s: %s", namespace, name, node, e)
        except urllib3.exceptions.HTTPError as e:
            logger.warning("process-kubelet: binding pod %s/%s to %s: %r", namespace, name, node, e)


def _schedulable(pod: dict[str, Any]) -> bool:
    return (
        pod["spec"].get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and pod["metadata"].get("deletionTimestamp") is None
        and pod.get("status", {}).get("phase", "Pending") == "Pending"
    )


def _base_env() -> dict[str, str]:
    """The host's environment minus its Kubernetes settings, with the venv's bin first on PATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KUBE", "KUBERNETES_"))}
    env["PATH"] = os.pathsep.join([str(builds.venv_bin_dir()), env.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"  # So that tests can read a pod's log while its process runs.
    return env


def _service_env(port: int) -> dict[str, str]:
    """The variables of the ``kubernetes`` Service that every pod gets, pointing at the local apiserver."""
    return {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://127.0.0.1:{port}",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": str(port),
        "KUBERNETES_PORT_443_TCP_ADDR": "127.0.0.1",
    }
