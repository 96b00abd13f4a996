"""`kubectl apply -f examples/routine.yaml` with the operator and a worker running: the Routine goes through
Pending and Running to Succeeded, its status has every timestamp and duration, its result and conditions, Events tell
the story, and `kubectl get rt` prints the columns with values."""

from __future__ import annotations

import kubernetes.client
import pytest

from tests.cluster import controlplane
from tests.kube import operators, routines

EXAMPLE = operators.REPO / "examples" / "routine.yaml"


@pytest.mark.usefixtures("operator")
def test_example_routine_succeeds_with_timestamps_durations_and_result(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    harness: operators.Harness,
) -> None:
    harness.start_worker("reports-1", modules=["examples.reports"], slots=8)

    k8s_cluster.kubectl("-n", k8s_namespace, "apply", "-f", str(EXAMPLE))
    routine = routines.wait_for_phase(k8s_api, k8s_namespace, "october-report", *routines.FINISHED)

    status = routine["status"]
    assert status["phase"] == "Succeeded", status
    assert status["runID"] == routine["metadata"]["uid"]
    assert status["attempt"] == 1
    assert status["worker"] == "reports-1"
    created, started, completed = (routines.moment(status[k]) for k in ("createdAt", "startedAt", "completedAt"))
    assert created <= started <= completed
    assert status["runTimeSeconds"] == round((completed - started).total_seconds(), 6)
    assert status["roundTripSeconds"] == round((completed - created).total_seconds(), 6)
    assert status["result"]["month"] == "2026-10"
    assert status["result"]["parts"] == 4
    assert status["subroutines"] == {"total": 4, "succeeded": 4, "failed": 0, "running": 0}
    assert "error" not in status
    assert status["observedGeneration"] == routine["metadata"]["generation"] == 1
    succeeded = routines.condition(routine, "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("True", "Succeeded")
    assert routines.condition(routine, "Running")["status"] == "False"

    table = k8s_cluster.kubectl("-n", k8s_namespace, "get", "rt", "october-report").stdout.splitlines()
    assert table[0].split() == ["NAME", "ROUTINE", "ID", "PHASE", "WORKER", "DURATION", "AGE"]
    name, routine_id, phase, worker, duration, _age = table[1].split()
    assert (name, routine_id, phase, worker) == ("october-report", "reports.build", "Succeeded", "reports-1")
    assert float(duration) == status["runTimeSeconds"]

    routines.wait_for_events(k8s_api, k8s_namespace, "october-report", "Queued", "Started", "Succeeded")
