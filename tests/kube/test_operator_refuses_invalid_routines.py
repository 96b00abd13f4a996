"""Invalid Routines: the API server refuses what the CRD's schema forbids, with the schema's message; a Routine the
schema lets through but the operator cannot run (here: a field a newer CRD added, unknown to this operator) is
failed once with the reason, never retried, and the operator goes on serving."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, cast

import kubernetes.client
import pytest
import yaml

from tests.cluster import controlplane, manifests, waiting
from tests.kube import operators, routines

CRD = "routines.workpath.dev"
SPEC_PROPERTIES = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties"


def test_schema_violations_are_refused_by_the_api_server(k8s_cluster: controlplane.Cluster, k8s_namespace: str) -> None:
    bad = manifests.routine("bad-id", routineID="reports build!", params={}, retries={"limit": -1})
    refused = k8s_cluster.kubectl("-n", k8s_namespace, "apply", "-f", "-", input=yaml.safe_dump(bad), check=False)

    assert refused.returncode != 0
    assert 'The Routine "bad-id" is invalid' in refused.stderr
    assert "spec.routineID: Invalid value" in refused.stderr
    assert "should match '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$'" in refused.stderr
    assert "spec.retries.limit: Invalid value: -1: spec.retries.limit in body should be greater than or equal to 0" in (
        refused.stderr
    )
    missing = k8s_cluster.kubectl(
        "-n", k8s_namespace, "apply", "-f", "-", input=yaml.safe_dump(manifests.routine("no-id")), check=False
    )
    assert "spec.routineID: Required value" in missing.stderr


@contextlib.contextmanager
def _crd_field(api: kubernetes.client.ApiClient, name: str, schema: dict[str, Any]) -> Iterator[None]:
    """The Routine CRD with one more spec field for the ``with`` block (as a newer CRD might have)."""
    extensions = kubernetes.client.ApiextensionsV1Api(api)
    path = f"{SPEC_PROPERTIES}/{name}"
    extensions.patch_custom_resource_definition(CRD, [{"op": "add", "path": path, "value": schema}])
    try:
        yield
    finally:
        extensions.patch_custom_resource_definition(CRD, [{"op": "remove", "path": path}])


def _served_with(api: kubernetes.client.ApiClient, namespace: str, field: str) -> bool:
    """Whether the API server keeps ``field`` in a Routine's spec (not pruned): the new schema is in use."""
    probe = manifests.routine("probe", routineID="k8s.broken", **{field: True})
    created = cast(
        dict[str, Any],
        routines.api(api).create_namespaced_custom_object(
            manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, probe, dry_run="All"
        ),
    )
    return field in created["spec"]


@pytest.fixture
def experimental_field(k8s_api: kubernetes.client.ApiClient) -> Iterator[None]:
    """The Routine CRD with ``spec.experimental``, a field this operator does not know, for the test."""
    with _crd_field(k8s_api, "experimental", {"type": "boolean"}):
        yield


def test_routine_the_operator_cannot_run_fails_once_with_the_reason(
    experimental_field: None,
    harness: operators.Harness,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
) -> None:
    # The operator starts after the CRD changed: a watch opened before would still see the old schema, which
    # prunes the new field (as the operator upgraded after the CRD would).
    waiting.wait_for(
        lambda: _served_with(k8s_api, k8s_namespace, "experimental"),
        timeout=30,
        what="the API server to serve the Routine CRD with spec.experimental",
    )
    operator = harness.start_operator()
    harness.start_worker("worker-1")
    routines.create(k8s_api, k8s_namespace, "newer", routineID="k8s.broken", experimental=True)
    newer = routines.wait_for_phase(k8s_api, k8s_namespace, "newer", *routines.FINISHED, timeout=20)

    status = newer["status"]
    assert status["phase"] == "Failed"
    assert status["runID"] == newer["metadata"]["uid"]
    assert status["error"]["type"] == "InvalidRoutineError"
    assert status["error"]["retryable"] is False
    assert "spec.experimental: Extra inputs are not permitted" in status["error"]["message"]
    condition = routines.condition(newer, "Succeeded")
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    routines.wait_for_events(k8s_api, k8s_namespace, "newer", "InvalidSpec")

    # It is failed once, not retried: nothing writes to it again, and the operator still serves.
    version = newer["metadata"]["resourceVersion"]
    routines.create(k8s_api, k8s_namespace, "valid", routineID="k8s.flaky", params={"failures": 0})
    assert routines.phase(routines.wait_for_phase(k8s_api, k8s_namespace, "valid", "Succeeded")) == "Succeeded"
    unchanged = routines.get(k8s_api, k8s_namespace, "newer")
    assert unchanged is not None
    assert unchanged["metadata"]["resourceVersion"] == version, json.dumps(unchanged["status"])
    assert operator.running
