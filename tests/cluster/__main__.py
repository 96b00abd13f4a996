"""``testcluster``: the test control plane and process-kubelet, for people (``python -m tests.cluster``).

tests/cluster/testcluster up            # in the foreground, until Ctrl-C
tests/cluster/testcluster up --detach   # in the background; prints `export KUBECONFIG=...`
tests/cluster/testcluster up --node     # a real node instead (root: kubelet, containerd, the images built here)
tests/cluster/testcluster status
tests/cluster/testcluster down
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

from tests.cluster import builds, controlplane, errors, kubelet, node, prerequisites, restoring, waiting

STATE_DIR = builds.cache_dir() / "testcluster"
STATE_FILE = STATE_DIR / "state.json"
LOG_FILE = STATE_DIR / "testcluster.log"
HEALTH_INTERVAL = 5.0


@dataclasses.dataclass(frozen=True)
class State:
    """What ``status`` and ``down`` need to know about a running ``up``."""

    pid: int
    kubeconfig: str
    server: str
    workdir: str
    nodes: list[str]

    @classmethod
    def load(cls) -> State | None:
        """The state of a live ``up`` process, or None (a stale state file is removed)."""
        try:
            state = cls(**json.loads(STATE_FILE.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        if not _is_ours(state.pid):
            STATE_FILE.unlink(missing_ok=True)
            return None
        return state

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        temporary = STATE_FILE.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        temporary.replace(STATE_FILE)


def _is_ours(pid: int) -> bool:
    """Whether ``pid`` is a live ``python -m tests.cluster up`` (and not a recycled pid)."""
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tests.cluster" in cmdline and b"up" in cmdline


def up(*, node_count: int, detach: bool, real_node: bool = False) -> int:
    if (running := State.load()) is not None:
        print(f"A test cluster already runs (pid {running.pid}):\nexport KUBECONFIG={running.kubeconfig}")
        return 1
    if detach:
        return _up_detached(node_count=node_count, real_node=real_node)
    if real_node:
        return _up_real_node()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    names = tuple(f"process-node-{i}" for i in range(1, node_count + 1))
    with (
        controlplane.Cluster.start() as cluster,
        kubelet.ProcessKubelet(cluster, node_names=names).start() as running_kubelet,
    ):
        State(
            pid=os.getpid(),
            kubeconfig=str(cluster.kubeconfig),
            server=cluster.server,
            workdir=str(cluster.workdir),
            nodes=list(names),
        ).save()
        print(
            f"Kubernetes {cluster.binaries.version} at {cluster.server}, ready in {time.monotonic() - started:.1f} s."
        )
        print(f"Pods run as local processes; their logs are under {running_kubelet.root}/pods.")
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        try:
            while not stop.wait(HEALTH_INTERVAL):
                cluster.check_alive()
        except errors.StartupError as e:
            print(f"The control plane died: {e}", file=sys.stderr)
            return 1
        finally:
            STATE_FILE.unlink(missing_ok=True)
            print("Stopping.", flush=True)
    return 0


def _up_real_node() -> int:
    """The control plane plus one real node, in the foreground until Ctrl-C or SIGTERM (then the host is restored)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    with node.NodeCluster.start() as running:
        cluster = running.control_plane
        State(
            pid=os.getpid(),
            kubeconfig=str(cluster.kubeconfig),
            server=cluster.server,
            workdir=str(running.workdir),
            nodes=[running.node_name],
        ).save()
        steps = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in running.milestones.items())
        print(f"Kubernetes {cluster.binaries.version} with real node {running.node_name}: {steps}.")
        print(f"Up in {time.monotonic() - started:.1f} s. Images (pullPolicy: Never):")
        for image in running.images.values():
            print(f"  {image.reference}")
        print(f"Component logs: {running.workdir}/logs; export KUBECONFIG={cluster.kubeconfig}", flush=True)
        try:
            while not stop.wait(HEALTH_INTERVAL):
                running.check_alive()
        except errors.StartupError as e:
            print(f"The cluster died: {e}", file=sys.stderr)
            return 1
        finally:
            STATE_FILE.unlink(missing_ok=True)
            print("Stopping and restoring the host.", flush=True)
    return 0


def _up_detached(*, node_count: int, real_node: bool) -> int:
    """Start ``up`` in a background session of its own and wait until it reports ready."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(__file__).resolve().parents[2]
    with LOG_FILE.open("wb") as log:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.cluster",
                "up",
                "--nodes",
                str(node_count),
                *(["--node"] if real_node else []),
            ],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> State | None:
        if child.poll() is not None:
            raise errors.StartupError(f"testcluster up exited with code {child.returncode}:\n{LOG_FILE.read_text()}")
        state = State.load()
        return state if state is not None and state.pid == child.pid else None

    try:
        # A real node's first start builds the images (minutes).
        state = waiting.wait_for(ready, timeout=900, what=f"the test cluster to start (log: {LOG_FILE})")
    except errors.ClusterError as e:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        print(e, file=sys.stderr)
        return 1
    print(f"Test cluster running in the background (pid {state.pid}, log {LOG_FILE}); stop it with `down`.")
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def down(*, timeout: float = 30.0) -> int:
    state = State.load()
    if state is None:
        _restore_crashed_node()
        print("No test cluster is running.")
        return 0
    pid = state.pid
    os.kill(pid, signal.SIGTERM)
    try:
        waiting.wait_for(lambda: not _is_ours(pid), timeout=timeout, what=f"pid {pid} to exit")
    except errors.WaitTimeoutError:
        os.kill(pid, signal.SIGKILL)  # Its children die with it (they have a parent-death signal).
    STATE_FILE.unlink(missing_ok=True)
    _restore_crashed_node()  # After a SIGKILL, the real node's host changes are still there.
    print(f"Test cluster (pid {pid}) stopped.")
    return 0


def _restore_crashed_node() -> None:
    """Undo a real node whose owner died without tearing down (from its state file); a no-op otherwise."""
    lock = restoring.MachineLock()
    try:
        lock.acquire()
    except restoring.NodeBusyError as e:
        print(f"Not restoring the host: {e}", file=sys.stderr)
        return
    try:
        if restoring.HostState.load() is not None:
            print("Restoring the host after a real node that did not stop cleanly.")
            restoring.restore_leftovers()
    finally:
        lock.release()


def status() -> int:
    state = State.load()
    if state is None:
        print("No test cluster is running.")
        return 1
    print(f"Test cluster: pid {state.pid}, {state.server}, nodes {', '.join(state.nodes)}")
    print(f"export KUBECONFIG={state.kubeconfig}")
    kubectl = [str(builds.venv_bin_dir() / "kubectl"), f"--kubeconfig={state.kubeconfig}"]
    readyz = subprocess.run([*kubectl, "get", "--raw", "/readyz"], capture_output=True, text=True, timeout=30)
    print(f"/readyz: {(readyz.stdout or readyz.stderr).strip()}")
    subprocess.run([*kubectl, "get", "nodes"], timeout=30, check=False)
    return 0 if readyz.returncode == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testcluster", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start etcd, kube-apiserver, kube-controller-manager, a kubelet")
    up_parser.add_argument("--nodes", type=int, default=2, help="how many process-kubelet nodes (default 2)")
    up_parser.add_argument("--detach", "-d", action="store_true", help="run in the background")
    up_parser.add_argument(
        "--node", action="store_true", help="a real node (kubelet, containerd, images built here; needs root)"
    )
    commands.add_parser("down", help="stop the background cluster")
    commands.add_parser("status", help="show the running cluster")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(node_count=args.nodes, detach=args.detach, real_node=args.node)
        if args.command == "down":
            return down()
        return status()
    except (errors.BinariesMissingError, prerequisites.PrerequisiteError, restoring.NodeBusyError) as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
