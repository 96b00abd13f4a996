"""A real node on this machine: the test control plane plus kubelet, containerd, kube-proxy, kube-scheduler, CoreDNS.

>>> with NodeCluster.start() as node:
...     node.cluster.kubectl("get", "nodes")   # workpath-node, Ready; pods run in containers from images built here

Order matters: the images are built (or found) and the host checked before anything changes; the host's state is
saved to a state file before the first change (:mod:`tests.cluster.restoring`); the bridge exists before the
apiserver binds to its address; containerd has the images before the kubelet starts. :meth:`NodeCluster.stop`
stops the scheduler first and deletes the workloads before their pods (else they come back), stops every process,
then restores the host from the state: it is idempotent and works from the state file after a crash as well.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import signal
import tempfile
import time
import types
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Self

import kubernetes.client

from tests.cluster import (
    builds,
    containerd,
    controlplane,
    credentials,
    errors,
    images,
    networking,
    nodeconfigs,
    prerequisites,
    processes,
    restoring,
    waiting,
)

logger = logging.getLogger(__name__)

NODE_NAME = "workpath-node"
CGROUP_NAME = "workpath-node"
STOP_TIMEOUT = 10.0
WORKLOADS = "deployments,replicasets,statefulsets,daemonsets,jobs"


@dataclasses.dataclass(frozen=True)
class NodeBinaries:
    """The node's executables from build.sh's cache."""

    kubelet: pathlib.Path
    kube_proxy: pathlib.Path
    kube_scheduler: pathlib.Path
    coredns: pathlib.Path
    pause: pathlib.Path

    @classmethod
    def find(cls, binaries: builds.Binaries) -> NodeBinaries:
        bin_dir = binaries.kube_apiserver.parent
        paths = {name: bin_dir / name for name in ("kubelet", "kube-proxy", "kube-scheduler", "coredns", "pause")}
        missing = [str(path) for path in paths.values() if not os.access(path, os.X_OK)]
        if missing:
            raise errors.BinariesMissingError(
                f"The node tier's binaries are not built ({', '.join(missing)} missing): "
                f"run `{builds.BUILD_COMMAND}` (a few minutes once, then cached in {bin_dir})."
            )
        return cls(*(paths[name] for name in ("kubelet", "kube-proxy", "kube-scheduler", "coredns", "pause")))


class _Identities:
    """The node components' users in the apiserver's token file (the kubelet's is what the Node authorizer wants)."""

    def __init__(self) -> None:
        self.kubelet = credentials.Identity(user=f"system:node:{NODE_NAME}", groups=("system:nodes",))
        self.kube_proxy = credentials.Identity(user="system:kube-proxy", groups=())
        self.scheduler = credentials.Identity(user="system:kube-scheduler", groups=())
        self.coredns = credentials.Identity(user="workpath-coredns", groups=("system:masters",))

    def all(self) -> list[credentials.Identity]:
        return [self.kubelet, self.kube_proxy, self.scheduler, self.coredns]


class NodeCluster:
    """The control plane on the bridge address and one real node. Create it with :meth:`start`."""

    def __init__(self, *, binaries: builds.Binaries, node_binaries: NodeBinaries, workdir: pathlib.Path) -> None:
        self.binaries = binaries
        self.node_binaries = node_binaries
        self.workdir = workdir
        self.node_name = NODE_NAME
        self.images: dict[str, images.Image] = {}
        self.milestones: dict[str, float] = {}
        """Seconds from the start to each step (images, control plane, containerd, node Ready, ...)."""
        self.cluster: controlplane.Cluster | None = None
        self.containerd = containerd.Containerd(
            workdir=workdir / "containerd",
            root=builds.cache_dir() / "node" / "containerd",
            cni_bin_dir=prerequisites.cni_plugin_dir(),
            cni_conf_dir=workdir / "cni" / "net.d",
        )
        self._identities = _Identities()
        self._processes: dict[str, processes.ManagedProcess] = {}
        self._state: restoring.HostState | None = None
        self._lock: restoring.MachineLock | None = None
        self._stopped = False

    # -- starting ------------------------------------------------------------------------------------------------

    @classmethod
    def start(cls, *, binaries: builds.Binaries | None = None, timeout: float = 90.0) -> NodeCluster:
        """Check the host, build or find the images, then bring everything up; tear down on any failure."""
        prerequisites.check_host()
        found = binaries or builds.Binaries.find()
        node_binaries = NodeBinaries.find(found)
        started = time.monotonic()
        builder = images.Builder()
        built = builder.ensure() | {"pause": builder.pause(node_binaries.pause)}
        lock = restoring.MachineLock()
        lock.acquire()
        try:
            restoring.restore_leftovers()
            node = cls(
                binaries=found,
                node_binaries=node_binaries,
                workdir=pathlib.Path(tempfile.mkdtemp(prefix="workpath-node-")),
            )
        except BaseException:
            lock.release()
            raise
        node._lock = lock
        node.images = built
        node.milestones["images ready"] = time.monotonic() - started
        try:
            node._boot(started=time.monotonic(), timeout=timeout)
        except BaseException:
            node.stop()
            raise
        return node

    def _boot(self, *, started: float, timeout: float) -> None:
        deadline = started + timeout
        self._state = restoring.snapshot(
            workdir=self.workdir,
            bridge=networking.BRIDGE,
            cgroup_name=CGROUP_NAME,
            socket=self.containerd.socket,
            kube_proxy=str(self.node_binaries.kube_proxy),
        )
        self._state.save()
        networking.create_bridge()
        networking.guard_egress()
        _make_cgroup_roots(CGROUP_NAME)
        self.cluster = controlplane.Cluster.start(
            binaries=self.binaries,
            address=networking.GATEWAY,
            identities=self._identities.all(),
            timeout=deadline - time.monotonic(),
        )
        self._milestone("control plane ready", started)
        networking.write_cni_config(self.workdir / "cni" / "net.d", ipam_dir=self.workdir / "cni" / "ipam")
        self.containerd.start(sandbox_image=self.images["pause"].reference)
        self._milestone("containerd serving", started)
        self.containerd.forget_containers()
        self.containerd.import_images(list(self.images.values()))
        self._milestone("images imported", started)
        self._start_coredns()
        kubelet = self._start_kubelet()
        self._start_kube_proxy()
        self._start_scheduler()
        self._await_node_ready(kubelet, timeout=deadline - time.monotonic())
        self._milestone("node Ready", started)
        self._await_dns(timeout=deadline - time.monotonic())
        self._milestone("cluster DNS ready", started)
        logger.info("Node %s up: %s.", NODE_NAME, ", ".join(f"{k} {v:.1f} s" for k, v in self.milestones.items()))

    def _milestone(self, step: str, started: float) -> None:
        self.milestones[step] = time.monotonic() - started

    def _kubeconfig(self, name: str, identity: credentials.Identity) -> pathlib.Path:
        assert self.cluster is not None
        path = self.workdir / f"{name}.kubeconfig"
        credentials.write_kubeconfig(path, server=self.cluster.server, ca_file=self.cluster.ca_file, identity=identity)
        return path

    def _start(self, name: str, argv: Sequence[str | os.PathLike[str]]) -> processes.ManagedProcess:
        process = processes.ManagedProcess.start(name, argv, log_path=self.workdir / "logs" / f"{name}.log")
        self._processes[name] = process
        return process

    def _start_coredns(self) -> None:
        ready_port = processes.free_port()
        kubeconfig = self._kubeconfig("coredns", self._identities.coredns)
        corefile = nodeconfigs.corefile(self.workdir / "Corefile", kubeconfig=kubeconfig, ready_port=ready_port)
        self._start("coredns", [self.node_binaries.coredns, "-conf", corefile])
        self._dns_ready_url = f"http://127.0.0.1:{ready_port}/ready"

    def _start_kubelet(self) -> processes.ManagedProcess:
        root = self.workdir / "kubelet"
        resolv_conf = self.workdir / "resolv.conf"
        resolv_conf.write_text("")
        self._kubelet_healthz_port = processes.free_port()
        config = nodeconfigs.kubelet_config(
            self.workdir / "kubelet.yaml",
            runtime_endpoint=self.containerd.endpoint,
            cgroup_root=f"/{CGROUP_NAME}",
            healthz_port=self._kubelet_healthz_port,
            resolv_conf=resolv_conf,
            pod_logs_dir=self.workdir / "pod-logs",
        )
        return self._start(
            "kubelet",
            [
                self.node_binaries.kubelet,
                f"--config={config}",
                f"--kubeconfig={self._kubeconfig('kubelet', self._identities.kubelet)}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={networking.GATEWAY}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        config = nodeconfigs.kube_proxy_config(
            self.workdir / "kube-proxy.yaml",
            kubeconfig=self._kubeconfig("kube-proxy", self._identities.kube_proxy),
            node_name=NODE_NAME,
            healthz_port=processes.free_port(),
            metrics_port=processes.free_port(),
        )
        self._start("kube-proxy", [self.node_binaries.kube_proxy, f"--config={config}", "--v=1"])

    def _start_scheduler(self) -> None:
        kubeconfig = self._kubeconfig("kube-scheduler", self._identities.scheduler)
        self._start(
            "kube-scheduler",
            [
                self.node_binaries.kube_scheduler,
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={processes.free_port()}",
                "--v=1",
            ],
        )

    def _await_node_ready(self, kubelet: processes.ManagedProcess, *, timeout: float) -> None:
        """Until the node reports Ready; a kubelet that exits or never gets there fails with its log's tail."""
        assert self.cluster is not None
        with self.cluster.api() as client:
            core = kubernetes.client.CoreV1Api(client)

            def ready() -> bool:
                for process in self._processes.values():
                    process.raise_if_exited()
                try:
                    return _node_is_ready(core.read_node(NODE_NAME))
                except kubernetes.client.ApiException as e:
                    if e.status == 404:
                        return False
                    raise

            try:
                waiting.wait_for(ready, timeout=timeout, what=f"node {NODE_NAME} to be Ready", interval=0.2)
            except errors.WaitTimeoutError as e:
                raise errors.StartupError(
                    f"{e}; the end of the kubelet's log {kubelet.log_path}:\n{kubelet.log_tail(60)}"
                ) from e

    def _await_dns(self, *, timeout: float) -> None:
        coredns = self._processes["coredns"]
        waiting.wait_for(
            coredns.checked(lambda: _http_ok(self._dns_ready_url)),
            timeout=timeout,
            what=f"CoreDNS to be ready (log: {coredns.log_path})",
        )

    # -- using it --------------------------------------------------------------------------------------------------

    @property
    def control_plane(self) -> controlplane.Cluster:
        if self.cluster is None:
            raise errors.ClusterError("The node's control plane is not running.")
        return self.cluster

    def logs(self, component: str) -> pathlib.Path:
        """The log file of ``kubelet``, ``kube-proxy``, ``kube-scheduler``, ``coredns`` or ``containerd``."""
        if component == "containerd" and self.containerd.process is not None:
            return self.containerd.process.log_path
        return self._processes[component].log_path

    def check_alive(self) -> None:
        """Raise :class:`StartupError` (with the log's tail) if a component of the node or control plane died."""
        self.control_plane.check_alive()
        for process in [*self._processes.values(), *filter(None, [self.containerd.process])]:
            process.raise_if_exited(during="while the node was in use")

    # -- stopping --------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Drain the workloads, stop every process, restore the host; raise if something could not be restored."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_process("kube-scheduler")
        if self.cluster is not None:
            self._drain()
        for name in ("kube-proxy", "coredns", "kubelet"):
            self._stop_process(name)
        self.containerd.stop(timeout=STOP_TIMEOUT)
        if self.cluster is not None:
            self.cluster.stop()
        problems = restoring.restore(self._state) if self._state is not None else []
        if self._lock is not None:
            self._lock.release()
        if problems:
            raise errors.ClusterError(f"The node's teardown left the host changed: {'; '.join(problems)}")

    def crash(self) -> None:
        """SIGKILL the node's processes as a killed test runner leaves them (shims, containers, mounts, rules stay),
        and stop the control plane; restore nothing: :func:`restoring.restore_leftovers` does, from the state file."""
        self._stopped = True
        for process in [*self._processes.values(), *filter(None, [self.containerd.process])]:
            process.signal(signal.SIGKILL)
            process.popen.wait()
        if self.cluster is not None:
            self.cluster.stop()
        if self._lock is not None:
            self._lock.release()

    def _stop_process(self, name: str) -> None:
        process = self._processes.get(name)
        if process is not None:
            processes.stop_all([process], timeout=STOP_TIMEOUT)

    def _drain(self) -> None:
        """Delete the workload controllers, then their pods, without waiting: with the scheduler stopped nothing
        comes back, and :func:`restoring.restore` kills what the kubelet has not stopped yet."""
        assert self.cluster is not None
        try:
            for kinds in (WORKLOADS, "pods"):
                self.cluster.kubectl("delete", kinds, "--all", "--all-namespaces", "--wait=false", timeout=30)
        except Exception:  # The host is restored anyway; a failed drain only leaves more for restore to kill.
            logger.exception("Deleting the node's workloads failed.")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.stop()


def _make_cgroup_roots(name: str) -> None:
    """The kubelet's ``cgroupRoot`` in every cgroup hierarchy (it must exist; the kubelet does not make it)."""
    hierarchies = {path.resolve() for path in restoring.CGROUP_ROOT.iterdir() if (path / "cgroup.procs").exists()}
    for hierarchy in hierarchies:
        (hierarchy / name).mkdir(exist_ok=True)


def _node_is_ready(node: kubernetes.client.V1Node) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
