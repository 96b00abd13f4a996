"""The real kubectl shows the CRDs' printer columns, by short name and by category."""

from __future__ import annotations

import kubernetes.client

from tests.cluster import controlplane, manifests


def _table(output: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (cells are separated by at least two spaces)."""
    return [[cell for cell in line.split("  ") if cell.strip()] for line in output.splitlines()]


def test_get_rt_shows_routine_columns(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    args = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES)
    objects.create_namespaced_custom_object(*args, manifests.routine("october-report", routineID="reports.build"))
    objects.patch_namespaced_custom_object_status(
        *args, "october-report", {"status": {"phase": "Succeeded", "worker": "worker-7c9f", "runTimeSeconds": 12.53}}
    )

    header, row = _table(k8s_cluster.kubectl("-n", k8s_namespace, "get", "rt").stdout)

    assert [cell.strip() for cell in header] == ["NAME", "ROUTINE ID", "PHASE", "WORKER", "DURATION", "AGE"]
    assert [cell.strip() for cell in row[:5]] == [
        "october-report",
        "reports.build",
        "Succeeded",
        "worker-7c9f",
        "12.53",
    ]


def test_get_wp_shows_worker_pool_columns(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    kubernetes.client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        manifests.GROUP,
        manifests.VERSION,
        k8s_namespace,
        manifests.WORKER_POOLS,
        manifests.worker_pool("default", image="workpath:dev", modules=["examples.reports"], routines=["reports.*"]),
    )

    header, row = _table(k8s_cluster.kubectl("-n", k8s_namespace, "get", "wp").stdout)

    assert [cell.strip() for cell in header] == ["NAME", "IMAGE", "DESIRED", "READY", "QUEUED", "AGE"]
    assert [cell.strip() for cell in row[:2]] == ["default", "workpath:dev"]


def test_get_workpath_category_lists_both_kinds(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    objects.create_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES, manifests.routine("r", routineID="a")
    )
    objects.create_namespaced_custom_object(
        manifests.GROUP,
        manifests.VERSION,
        k8s_namespace,
        manifests.WORKER_POOLS,
        manifests.worker_pool("p", image="i", modules=["m"], routines=["a"]),
    )

    names = k8s_cluster.kubectl("-n", k8s_namespace, "get", "workpath", "-o", "name").stdout.split()

    assert sorted(names) == ["routine.workpath.dev/r", "workerpool.workpath.dev/p"]
