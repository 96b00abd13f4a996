"""A WorkerPool keeps every spec field the operator reads (nothing is pruned), gets the CRD's defaults, takes the
status the operator writes through the status subresource, and kubectl shows the real values in its columns."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes.client

from tests.cluster import controlplane, manifests, models

STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "replicas": 3,
    "readyReplicas": 2,
    "desiredReplicas": 4,
    "connectedWorkers": 2,
    "busySlots": 7,
    "queued": 9,
    "running": 7,
    "lastScaleTime": "2026-10-01T12:00:00Z",
    "conditions": [
        {
            "type": "Ready",
            "status": "False",
            "reason": "ScalingUp",
            "message": "2 of 4 worker pods ready",
            "lastTransitionTime": "2026-10-01T12:00:00Z",
            "observedGeneration": 1,
        },
        {"type": "ScalingLimited", "status": "False", "reason": "WithinBounds"},
    ],
}


def _table(output: str) -> list[list[str]]:
    """kubectl's table output as rows of stripped cells (cells are separated by at least two spaces)."""
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in output.splitlines()]


def test_every_spec_field_is_kept(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    created = models.json_object(
        objects.create_namespaced_custom_object(
            manifests.GROUP,
            manifests.VERSION,
            k8s_namespace,
            manifests.WORKER_POOLS,
            manifests.worker_pool("full", **copy.deepcopy(manifests.FULL_POOL_SPEC)),
        )
    )

    assert created["spec"] == manifests.FULL_POOL_SPEC


def test_status_is_written_through_the_status_subresource(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    args = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.WORKER_POOLS)
    objects.create_namespaced_custom_object(*args, manifests.worker_pool("status", **manifests.FULL_POOL_SPEC))

    objects.patch_namespaced_custom_object_status(*args, "status", {"status": STATUS})
    # A status in the main resource is ignored: only the operator's status writes count.
    objects.patch_namespaced_custom_object(*args, "status", {"status": {"queued": 1000}})

    assert models.json_object(objects.get_namespaced_custom_object(*args, "status"))["status"] == STATUS


def test_kubectl_shows_the_status_values(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    args = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.WORKER_POOLS)
    objects.create_namespaced_custom_object(*args, manifests.worker_pool("reports", **manifests.FULL_POOL_SPEC))
    objects.patch_namespaced_custom_object_status(*args, "reports", {"status": STATUS})

    header, row = _table(k8s_cluster.kubectl("-n", k8s_namespace, "get", "wp", "-o", "wide").stdout)

    assert header == ["NAME", "IMAGE", "DESIRED", "READY", "QUEUED", "AGE", "RUNNING", "MIN", "MAX", "CONNECTED"]
    values = dict(zip(header, row, strict=True))
    assert values["IMAGE"] == manifests.FULL_POOL_SPEC["image"]
    assert [values[column] for column in ("DESIRED", "READY", "QUEUED", "RUNNING")] == ["4", "2", "9", "7"]
    assert [values[column] for column in ("MIN", "MAX", "CONNECTED")] == ["1", "8", "2"]
