"""`ttlSecondsAfterFinished`: the operator deletes a finished Routine that long after it finished, and keeps the
ones without it."""

from __future__ import annotations

import time

import kubernetes.client
import pytest

from tests.kube import operators, routines


@pytest.mark.usefixtures("operator")
def test_finished_routine_is_deleted_after_its_ttl(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    harness: operators.Harness,
) -> None:
    harness.start_worker("worker-1")
    routines.create(k8s_api, k8s_namespace, "kept", routineID="k8s.flaky", params={"failures": 0})
    routines.create(
        k8s_api, k8s_namespace, "brief", routineID="k8s.flaky", params={"failures": 0}, ttlSecondsAfterFinished=2
    )

    finished = routines.wait_for_phase(k8s_api, k8s_namespace, "brief", "Succeeded")
    seen_finished = time.monotonic()
    routines.wait_until_gone(k8s_api, k8s_namespace, "brief", timeout=15)
    gone_after = time.monotonic() - seen_finished
    completed = routines.moment(finished["status"]["completedAt"])
    assert gone_after > 0.5, f"deleted {gone_after:.2f}s after it was seen finished at {completed}: too early"

    assert routines.phase(routines.wait_for_phase(k8s_api, k8s_namespace, "kept", "Succeeded")) == "Succeeded"
    assert routines.get(k8s_api, k8s_namespace, "kept") is not None
