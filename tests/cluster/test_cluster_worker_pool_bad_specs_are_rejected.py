"""The API server refuses a WorkerPool whose spec the operator could not run, with a message naming the field: the
CRD's schema and CEL rules (min <= max, slots >= 1, modules, image, reserved labels and annotations, unique env)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest

from tests.cluster import manifests, models

VALID: dict[str, Any] = {"image": "workpath/worker:0.1.0", "modules": ["examples.reports"], "routines": ["reports.*"]}


def _rejection(api: kubernetes.client.ApiClient, namespace: str, body: dict[str, Any]) -> str:
    """Create the WorkerPool ``body``, expecting a 422; return the API server's message."""
    objects = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(kubernetes.client.ApiException) as raised:
        objects.create_namespaced_custom_object(
            manifests.GROUP, manifests.VERSION, namespace, manifests.WORKER_POOLS, body
        )
    assert raised.value.status == 422, raised.value.body
    message: str = json.loads(models.required(raised.value.body))["message"]
    return message


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, ["spec: Invalid value", "minReplicas must not exceed maxReplicas"]),
        ({"minReplicas": 11}, ["minReplicas must not exceed maxReplicas"]),  # the default maxReplicas is 10
        ({"slots": 0}, ["spec.slots: Invalid value: 0: spec.slots in body should be greater than or equal to 1"]),
        ({"slots": 10_001}, ["spec.slots: Invalid value: 10001", "should be less than or equal to 10000"]),
        ({"maxReplicas": 0}, ["spec.maxReplicas: Invalid value: 0", "should be greater than or equal to 1"]),
        ({"modules": []}, ["spec.modules: Invalid value: 0: spec.modules in body should have at least 1 items"]),
        ({"modules": ["examples/reports.py"]}, ['spec.modules[0]: Invalid value: "examples/reports.py"', "match"]),
        ({"routines": []}, ["spec.routines: Invalid value: 0: spec.routines in body should have at least 1 items"]),
        ({"routines": ["reports build"]}, ['spec.routines[0]: Invalid value: "reports build"', "match"]),
        ({"image": "Worker Image"}, ['spec.image: Invalid value: "Worker Image"', "match"]),
        ({"image": "worker:"}, ['spec.image: Invalid value: "worker:"', "match"]),
        ({"scaleDownDelaySeconds": -1}, ["spec.scaleDownDelaySeconds: Invalid value: -1"]),
        ({"drainTimeoutSeconds": -1}, ["spec.drainTimeoutSeconds: Invalid value: -1"]),
        (
            {"podLabels": {"workpath.dev/pool": "other"}},
            ["spec.podLabels", "must not set workpath.dev/pool; the operator sets it"],
        ),
        (
            {"podAnnotations": {"controller.kubernetes.io/pod-deletion-cost": "-5"}},
            ["spec.podAnnotations", "must not set controller.kubernetes.io/pod-deletion-cost"],
        ),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, ["spec.env[1]: Duplicate value"]),
        ({"env": [{"value": "1"}]}, ["spec.env[0].name: Required value"]),
        ({"tolerations": [{"key": "k", "operator": "Maybe"}]}, ["spec.tolerations[0].operator: Unsupported value"]),
    ],
    ids=[
        "min-above-max",
        "min-above-default-max",
        "slots-zero",
        "slots-too-many",
        "max-zero",
        "modules-empty",
        "module-path",
        "routines-empty",
        "routine-pattern",
        "image-spaces",
        "image-empty-tag",
        "delay-negative",
        "drain-negative",
        "reserved-label",
        "deletion-cost",
        "env-twice",
        "env-without-name",
        "toleration-operator",
    ],
)
def test_bad_worker_pool_spec_is_rejected_naming_the_field(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, change: dict[str, Any], fragments: list[str]
) -> None:
    message = _rejection(k8s_api, k8s_namespace, manifests.worker_pool("invalid", **VALID | change))

    assert [fragment for fragment in fragments if fragment not in message] == [], message


@pytest.mark.parametrize("missing", ["image", "modules", "routines"])
def test_worker_pool_without_a_required_field_is_rejected(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, missing: str
) -> None:
    spec = {key: value for key, value in VALID.items() if key != missing}

    assert f"spec.{missing}: Required value" in _rejection(k8s_api, k8s_namespace, manifests.worker_pool("p", **spec))


def test_worker_pool_name_must_fit_the_pool_label(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    message = _rejection(k8s_api, k8s_namespace, manifests.worker_pool("p" * 64, **VALID))

    assert "the name of a WorkerPool must be at most 63 characters" in message


def test_worker_pool_spec_change_is_checked_too(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    args = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.WORKER_POOLS)
    objects.create_namespaced_custom_object(*args, manifests.worker_pool("pool", **VALID))

    with pytest.raises(kubernetes.client.ApiException) as raised:
        objects.patch_namespaced_custom_object(*args, "pool", {"spec": {"minReplicas": 20}})

    assert raised.value.status == 422
    assert "minReplicas must not exceed maxReplicas" in json.loads(models.required(raised.value.body))["message"]
    # A valid change is accepted: unlike a Routine's, a WorkerPool's spec may change (it rolls the pods).
    changed = models.json_object(
        objects.patch_namespaced_custom_object(*args, "pool", {"spec": {"slots": 3, "maxReplicas": 4}})
    )
    assert (changed["spec"]["slots"], changed["spec"]["maxReplicas"]) == (3, 4)
