"""A failing routine ends Failed with its error; a retryable failure is retried as a new attempt (and says so in an
Event); a result over the size cap fails the run, not retryable, with an error that says what to do."""

from __future__ import annotations

import kubernetes.client
import pytest

from tests.kube import operators, routines


@pytest.mark.usefixtures("operator")
def test_failures_retries_and_oversized_results_show_in_the_status(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    harness: operators.Harness,
) -> None:
    harness.start_worker("worker-1")
    routines.create(k8s_api, k8s_namespace, "broken", routineID="k8s.broken")
    routines.create(
        k8s_api,
        k8s_namespace,
        "flaky",
        routineID="k8s.flaky",
        params={"failures": 1},
        retries={"limit": 1, "backoffSeconds": 0},
    )
    routines.create(k8s_api, k8s_namespace, "oversized", routineID="k8s.sized", params={"size": 70_000})

    broken = routines.wait_for_phase(k8s_api, k8s_namespace, "broken", *routines.FINISHED)
    assert broken["status"]["phase"] == "Failed"
    assert broken["status"]["error"] == {
        "type": "ValueError",
        "message": "this input can never work",
        "retryable": False,
    }
    assert "result" not in broken["status"]
    failed = routines.condition(broken, "Succeeded")
    assert (failed["status"], failed["reason"], failed["message"]) == (
        "False",
        "Failed",
        "this input can never work",
    )

    flaky = routines.wait_for_phase(k8s_api, k8s_namespace, "flaky", *routines.FINISHED)
    assert flaky["status"]["phase"] == "Succeeded", flaky["status"]
    assert flaky["status"]["attempt"] == 2
    assert flaky["status"]["result"] == 2

    oversized = routines.wait_for_phase(k8s_api, k8s_namespace, "oversized", *routines.FINISHED)
    error = oversized["status"]["error"]
    assert oversized["status"]["phase"] == "Failed"
    assert (error["type"], error["retryable"]) == ("ResultTooLargeError", False)
    assert "the limit is 65536" in error["message"]
    assert "return a reference" in error["message"]

    routines.wait_for_events(k8s_api, k8s_namespace, "flaky", "Queued", "Started", "Retrying", "Succeeded")
    routines.wait_for_events(k8s_api, k8s_namespace, "broken", "Failed")
