"""The project's CRDs are served: Established, with their defaults, and a status result of any JSON type."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from tests.cluster import manifests, models


@pytest.mark.parametrize("name", ["routines.workpath.dev", "workerpools.workpath.dev"])
def test_crd_is_established_with_accepted_names(k8s_api: kubernetes.client.ApiClient, name: str) -> None:
    crd = kubernetes.client.ApiextensionsV1Api(k8s_api).read_custom_resource_definition(name)
    conditions = {c.type: c.status for c in models.required(models.required(crd.status).conditions)}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"


def test_routine_spec_defaults_are_filled_in(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    created = models.json_object(
        objects.create_namespaced_custom_object(
            manifests.GROUP,
            manifests.VERSION,
            k8s_namespace,
            manifests.ROUTINES,
            manifests.routine("defaults", routineID="reports.build"),
        )
    )
    assert created["spec"] == {
        "routineID": "reports.build",
        "params": {},
        "priority": 0,
        "retries": {"limit": 0, "backoffSeconds": 5},
    }


def test_worker_pool_spec_defaults_are_filled_in(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    created = models.json_object(
        objects.create_namespaced_custom_object(
            manifests.GROUP,
            manifests.VERSION,
            k8s_namespace,
            manifests.WORKER_POOLS,
            manifests.worker_pool(
                "defaults", image="workpath:dev", modules=["examples.reports"], routines=["reports.*"]
            ),
        )
    )
    assert created["spec"] == {
        "image": "workpath:dev",
        "modules": ["examples.reports"],
        "routines": ["reports.*"],
        "slots": 10,
        "minReplicas": 0,
        "maxReplicas": 10,
        "scaleDownDelaySeconds": 60,
        "drainTimeoutSeconds": 30,
    }


@pytest.mark.parametrize(
    "result", [{"rows": 3, "nested": {"a": [1, None]}}, [1, "two", 3.5], "text", 42, 2.5, True, False]
)
def test_routine_status_result_keeps_any_json_value(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, result: Any
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    objects.create_namespaced_custom_object(
        manifests.GROUP,
        manifests.VERSION,
        k8s_namespace,
        manifests.ROUTINES,
        manifests.routine("result", routineID="reports.build"),
    )
    patched = models.json_object(
        objects.patch_namespaced_custom_object_status(
            manifests.GROUP,
            manifests.VERSION,
            k8s_namespace,
            manifests.ROUTINES,
            "result",
            {"status": {"phase": "Succeeded", "result": result, "runTimeSeconds": 1.25}},
        )
    )
    assert patched["status"] == {"phase": "Succeeded", "result": result, "runTimeSeconds": 1.25}
