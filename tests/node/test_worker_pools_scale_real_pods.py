"""WorkerPools on the real node: the chart's operator pod scales a pool's Deployment of real worker pods (the worker
image built here, under the "restricted" Pod Security Standard) from zero when Routines are queued; the pods' workers
reach the operator through the Service's DNS name with their projected tokens and run everything once; the pool is
back at zero after its delay. A scale-down lets the idle pods go and keeps the busy one until its run Succeeded.

The runs are ``reports.archive`` (examples/reports.py, in the worker image): a long plain function, so that pods
stay busy for as long as the test needs. Figures (pod start, 0 -> N, N -> 0) are printed (``pytest -s``)."""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from tests.chart import rendering
from tests.cluster import lookups, manifests, models, node, waiting
from tests.kube import worker_pools
from tests.node import deploying

VALUES_POOL = "archivers"
"""The pool from the chart's ``workerPools`` values."""
APPLIED_POOL = "idlefirst"
"""The pool the idle-first test applies itself."""
WORKER_ACCOUNT = "workpath-worker"


@pytest.fixture(scope="module")
def pool_release(node_cluster: node.NodeCluster, node_helm: rendering.Helm) -> Iterator[deploying.Release]:
    """The chart with one operator, no static workers and a WorkerPool from values, in a restricted namespace."""
    control_plane = node_cluster.control_plane
    namespace = control_plane.create_namespace(prefix="node-pools")
    try:
        with control_plane.api() as client:
            core = kubernetes.client.CoreV1Api(client)
            labels = {"pod-security.kubernetes.io/enforce": "restricted"}
            core.patch_namespace(namespace, {"metadata": {"labels": labels}})
            values = deploying.values(node_cluster, namespace)
            values["operator"]["replicas"] = 1
            values["workers"]["enabled"] = False  # Its image is still the pools' default.
            values["workerPools"] = [_pool_spec(name=VALUES_POOL, slots=2, maxReplicas=3, scaleDownDelaySeconds=3)]
            started = time.monotonic()
            release = deploying.Release(name=f"wp-{secrets.token_hex(3)}", namespace=namespace, install_seconds=0)
            node_helm.install(release.name, rendering.CHART, namespace=namespace, values=values)
            deploying.ready_pods(core, release, "operator", count=1)
            print(f"helm install -> operator Ready: {time.monotonic() - started:.1f} s")
            yield release
    finally:
        control_plane.delete_namespace(namespace)


@pytest.fixture
def api(node_cluster: node.NodeCluster) -> Iterator[kubernetes.client.ApiClient]:
    with node_cluster.control_plane.api() as client:
        yield client


def _pool_spec(**spec: Any) -> dict[str, Any]:
    """A pool of ``reports.archive`` workers (examples.reports in the worker image)."""
    return {"modules": ["examples.reports"], "routines": ["reports.archive"], "drainTimeoutSeconds": 5} | spec


def _archive(api: kubernetes.client.ApiClient, namespace: str, name: str, *, seconds: float, pool: str) -> None:
    """A Routine of ``reports.archive`` named ``name`` that runs ``seconds``, routed to ``pool``."""
    body = {
        "apiVersion": f"{manifests.GROUP}/{manifests.VERSION}",
        "kind": "Routine",
        "metadata": {"name": name},
        "spec": {"routineID": "reports.archive", "pool": pool, "params": {"month": name, "seconds": seconds}},
    }
    kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, body
    )


def _ready_pods(api: kubernetes.client.ApiClient, namespace: str, pool: str, count: int) -> list[Any]:
    """The pool's pods once exactly ``count`` of them are Ready (none being deleted)."""

    def ready() -> list[Any] | None:
        found = worker_pools.pods(api, namespace, pool)
        return found if len(found) == count and all(lookups.pod_is_ready(pod) for pod in found) else None

    return waiting.wait_for(
        ready,
        timeout=90,
        what=f"{count} Ready pods of pool {pool}",
        interval=0.2,
    )


def _connected(api: kubernetes.client.ApiClient, namespace: str, pool: str, count: int) -> None:
    waiting.wait_for(
        lambda: worker_pools.status(api, namespace, pool).get("connectedWorkers") == count,
        timeout=60,
        what=f"{count} connected workers in pool {pool}",
        interval=0.2,
    )


def _worker_url(api: kubernetes.client.ApiClient, release: deploying.Release) -> str:
    """The operator's ``--worker-url`` (what it gives the pools' pods), checked to name the Service by DNS."""
    selector = f"app.kubernetes.io/instance={release.name}"
    (service,) = (
        kubernetes.client.CoreV1Api(api).list_namespaced_service(release.namespace, label_selector=selector).items
    )
    (operator,) = (
        kubernetes.client.AppsV1Api(api)
        .list_namespaced_deployment(release.namespace, label_selector=release.selector("operator"))
        .items
    )
    args = list(models.required(models.required(models.required(operator.spec).template.spec).containers[0].command))
    url = str(args[args.index("--worker-url") + 1])
    assert urllib.parse.urlsplit(url).hostname == f"{models.name(service)}.{release.namespace}.svc", url
    return url


def test_a_pool_of_real_pods_scales_from_zero_runs_everything_once_and_returns_to_zero(
    pool_release: deploying.Release, api: kubernetes.client.ApiClient
) -> None:
    namespace, pool = pool_release.namespace, VALUES_POOL
    worker_pools.wait_for_replicas(api, namespace, pool, 0, timeout=60)
    assert worker_pools.pods(api, namespace, pool) == []

    names = [f"archive-{n}" for n in range(6)]  # 6 runs of 2 slots a worker: 3 workers, maxReplicas.
    started = time.monotonic()
    for name in names:
        _archive(api, namespace, name, seconds=8, pool=pool)
    worker_pools.wait_for_replicas(api, namespace, pool, 3, timeout=30)
    scaled_up = time.monotonic()
    _connected(api, namespace, pool, 3)  # Before Ready: readiness wants the worker connected twice in a row.
    connected = time.monotonic()
    pods = _ready_pods(api, namespace, pool, 3)
    ready = time.monotonic()

    # The workers dial the operator's Service by its DNS name (CoreDNS on the node, then the ClusterIP).
    url = _worker_url(api, pool_release)
    for pod in pods:
        (container,) = pod.spec.containers
        env = {variable.name: variable.value for variable in container.env}
        assert env["WORKPATH_URL"] == url
        assert pod.spec.security_context.run_as_non_root and container.security_context.read_only_root_filesystem
    finals = {name: deploying.wait_finished(_objects(api), namespace, name, timeout=90)["status"] for name in names}
    succeeded = time.monotonic()

    assert {name: status["phase"] for name, status in finals.items()} == dict.fromkeys(names, "Succeeded")
    assert {name: status["attempt"] for name, status in finals.items()} == dict.fromkeys(names, 1)
    assert {status["worker"] for status in finals.values()} == {pod.metadata.name for pod in pods}
    assert all(status["result"]["archived"] for status in finals.values())
    worker_pools.wait_for_replicas(api, namespace, pool, 0, timeout=30)
    waiting.wait_for(
        lambda: worker_pools.pods(api, namespace, pool) == [], timeout=60, what="the pool's pods to go", interval=0.2
    )
    gone = time.monotonic()
    events = worker_pools.events(api, namespace, pool)
    decisions = [message for _, message in events]
    # Up from zero as the Routines arrive (a decision per change in the queue), to 3; down to 0 at the end.
    assert events[0][0] == "ScaledUp" and decisions[0].endswith("(was 0)"), decisions
    assert any("→ 3 replicas" in message for message in decisions), decisions
    assert "→ 0 replicas" in decisions[-1], decisions
    print(
        f"pool 0 -> 3 on the real node: Routines created -> replicas 3 {scaled_up - started:.1f} s, "
        f"-> 3 workers connected {connected - started:.1f} s, -> 3 pods Ready {ready - started:.1f} s, "
        f"-> 6 runs of 8 s Succeeded {succeeded - started:.1f} s; then 0 pods (delay 3 s) {gone - succeeded:.1f} s"
    )


def test_a_scale_down_of_real_pods_lets_the_idle_go_and_keeps_the_busy_one_until_its_run_is_done(
    pool_release: deploying.Release, api: kubernetes.client.ApiClient
) -> None:
    namespace, pool = pool_release.namespace, APPLIED_POOL
    spec = _pool_spec(
        image=_pool_image(api, namespace),
        serviceAccountName=WORKER_ACCOUNT,
        slots=1,
        minReplicas=3,
        maxReplicas=3,
        scaleDownDelaySeconds=2,
    )
    worker_pools.create(api, namespace, pool, **spec)
    _ready_pods(api, namespace, pool, 3)
    _connected(api, namespace, pool, 3)
    _archive(api, namespace, "long", seconds=15, pool=pool)
    busy = waiting.wait_for(
        lambda: (s := _status(api, namespace, "long")).get("phase") == "Running" and s.get("worker"),
        timeout=30,
        what="Routine long to run on a worker",
    )
    idle = {models.name(pod) for pod in worker_pools.pods(api, namespace, pool)} - {busy}
    assert len(idle) == 2

    # Demand drops to the one running run: one worker is enough, and it must be the busy one.
    dropped = time.monotonic()
    worker_pools.patch(api, namespace, pool, {"minReplicas": 0})
    worker_pools.wait_for_replicas(api, namespace, pool, 1, timeout=20)
    waiting.wait_for(
        lambda: [models.name(pod) for pod in worker_pools.pods(api, namespace, pool)] == [busy],
        timeout=30,
        what=f"only the busy pod {busy} to stay",
    )
    let_go = time.monotonic()
    (kept,) = worker_pools.pods(api, namespace, pool)
    assert (
        models.required(models.required(kept.metadata).annotations)["controller.kubernetes.io/pod-deletion-cost"] == "1"
    )
    assert (_status(api, namespace, "long")["phase"], _status(api, namespace, "long")["attempt"]) == ("Running", 1)
    scaled_down = [message for reason, message in worker_pools.events(api, namespace, pool) if reason == "ScaledDown"]
    assert any(
        sorted(idle) == sorted(message.split("idle workers let go: ")[1].rstrip(")").split(", "))
        for message in scaled_down
        if "idle workers let go: " in message
    ), scaled_down

    # The busy pod's own log counts the executions, read before the pool may let it go.
    core = kubernetes.client.CoreV1Api(api)
    logs = waiting.wait_for(
        lambda: text if "report archived" in (text := deploying.pod_logs(core, namespace, busy)) else None,
        timeout=40,
        what=f"the run to finish in pod {busy}",
        interval=0.2,
    )
    done = deploying.wait_finished(_objects(api), namespace, "long", timeout=30)["status"]
    assert (done["phase"], done["attempt"], done["worker"]) == ("Succeeded", 1, busy)
    assert (_count(logs, "archiving report", "long"), _count(logs, "report archived", "long")) == (1, 1)
    worker_pools.wait_for_replicas(api, namespace, pool, 0, timeout=30)
    print(f"idle-first on real pods: demand dropped -> only the busy pod left {let_go - dropped:.1f} s")


def _objects(api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


def _status(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = deploying.routine(_objects(api), namespace, name).get("status", {})
    return status


def _pool_image(api: kubernetes.client.ApiClient, namespace: str) -> str:
    image: str = worker_pools.get(api, namespace, VALUES_POOL)["spec"]["image"]
    return image


def _count(logs: str, message: str, month: str) -> int:
    """How many of a worker's JSON log lines say ``message`` for the archive of ``month``."""
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    return sum(1 for r in records if r.get("message") == message and r.get("fields", {}).get("month") == month)
