"""The API server enforces the CRDs' schemas and CEL rules, with messages that say what is wrong."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import pytest

from tests.cluster import manifests, models


def _rejection(api: kubernetes.client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> str:
    """Create ``body``, expecting a 422; return the API server's message."""
    objects = kubernetes.client.CustomObjectsApi(api)
    with pytest.raises(kubernetes.client.ApiException) as raised:
        objects.create_namespaced_custom_object(manifests.GROUP, manifests.VERSION, namespace, plural, body)
    assert raised.value.status == 422, raised.value.body
    message: str = json.loads(models.required(raised.value.body))["message"]
    return message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"params": {"month": "2026-10"}}, "spec.routineID: Required value"),
        (
            {"routineID": "not valid!"},
            'spec.routineID: Invalid value: "not valid!": spec.routineID in body should '
            r"match '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$'",
        ),
        ({"routineID": "x" * 254}, "spec.routineID: Too long: may not be more than 253 bytes"),
        (
            {"routineID": "a.b", "timeoutSeconds": 0},
            "spec.timeoutSeconds: Invalid value: 0: spec.timeoutSeconds in body should be greater than 0",
        ),
        (
            {"routineID": "a.b", "retries": {"limit": -1}},
            "spec.retries.limit: Invalid value: -1: spec.retries.limit in body should be greater than or equal to 0",
        ),
        (
            {"routineID": "a.b", "priority": "high"},
            'spec.priority: Invalid value: "string": spec.priority in body must be of type integer: "string"',
        ),
    ],
    ids=[
        "missing-routine-id",
        "routine-id-pattern",
        "routine-id-length",
        "timeout-zero",
        "retries-negative",
        "priority-type",
    ],
)
def test_invalid_routine_is_rejected_with_the_schema_message(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, spec: dict[str, Any], expected: str
) -> None:
    message = _rejection(k8s_api, k8s_namespace, manifests.ROUTINES, manifests.routine("invalid", **spec))
    assert expected in message


def test_routine_without_spec_is_rejected(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    body = manifests.routine("no-spec")
    del body["spec"]
    assert "spec: Required value" in _rejection(k8s_api, k8s_namespace, manifests.ROUTINES, body)


def test_routine_with_unknown_phase_is_rejected(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    body = manifests.routine("bad-phase", routineID="a.b") | {"status": {"phase": "Done"}}
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    objects.create_namespaced_custom_object(manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES, body)
    with pytest.raises(kubernetes.client.ApiException) as raised:
        objects.patch_namespaced_custom_object_status(
            manifests.GROUP,
            manifests.VERSION,
            k8s_namespace,
            manifests.ROUTINES,
            "bad-phase",
            {"status": {"phase": "Done"}},
        )
    assert raised.value.status == 422
    assert (
        'status.phase: Unsupported value: "Done": supported values: "Pending", "Running", "Succeeded", '
        '"Failed", "Cancelled"' in json.loads(models.required(raised.value.body))["message"]
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"image": "w", "modules": ["m"], "routines": ["a"], "minReplicas": 5, "maxReplicas": 2},
            "spec: Invalid value: minReplicas must not exceed maxReplicas",
        ),
        (
            {"image": "w", "modules": ["m"], "routines": []},
            "spec.routines: Invalid value: 0: spec.routines in body should have at least 1 items",
        ),
        ({"modules": ["m"], "routines": ["a"]}, "spec.image: Required value"),
        (
            {"image": "w", "modules": ["m"], "routines": ["a"], "slots": 0},
            "spec.slots: Invalid value: 0: spec.slots in body should be greater than or equal to 1",
        ),
    ],
    ids=["min-above-max", "no-routines", "no-image", "no-slots"],
)
def test_invalid_worker_pool_is_rejected_with_the_schema_message(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, spec: dict[str, Any], expected: str
) -> None:
    message = _rejection(k8s_api, k8s_namespace, manifests.WORKER_POOLS, manifests.worker_pool("invalid", **spec))
    assert expected in message
