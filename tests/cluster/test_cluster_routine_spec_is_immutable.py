"""A Routine's spec cannot change after creation (CEL `self == oldSelf`); its status and metadata can."""

from __future__ import annotations

import json

import kubernetes.client
import pytest

from tests.cluster import manifests, models


@pytest.fixture
def routine(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> str:
    kubernetes.client.CustomObjectsApi(k8s_api).create_namespaced_custom_object(
        manifests.GROUP,
        manifests.VERSION,
        k8s_namespace,
        manifests.ROUTINES,
        manifests.routine("immutable", routineID="reports.build", params={"month": "2026-10"}),
    )
    return "immutable"


@pytest.mark.parametrize(
    "spec_change",
    [{"priority": 5}, {"params": {"month": "2026-11"}}, {"routineID": "reports.other"}, {"pool": "gpu"}],
    ids=["priority", "params", "routine-id", "pool"],
)
def test_spec_change_is_rejected_as_immutable(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, routine: str, spec_change: dict[str, object]
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    with pytest.raises(kubernetes.client.ApiException) as raised:
        objects.patch_namespaced_custom_object(
            manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES, routine, {"spec": spec_change}
        )
    assert raised.value.status == 422
    assert "spec: Invalid value: spec is immutable" in json.loads(models.required(raised.value.body))["message"]


def test_status_and_labels_can_change(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, routine: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    args = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES, routine)
    objects.patch_namespaced_custom_object_status(*args, {"status": {"phase": "Running", "worker": "w-1"}})
    objects.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"team": "reports"}}})
    current = models.json_object(objects.get_namespaced_custom_object(*args))
    assert current["status"] == {"phase": "Running", "worker": "w-1"}
    assert current["metadata"]["labels"] == {"team": "reports"}
    assert current["spec"]["params"] == {"month": "2026-10"}
