"""The fan-out example: every sub-routine becomes a child Routine in the parent's namespace, owned by the parent's
Routine and labelled with its lineage; the parent counts its children (never lists them); deleting the parent
garbage-collects the children."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from tests.cluster import controlplane, waiting
from tests.kube import operators, routines

EXAMPLE = operators.REPO / "examples" / "fanout.yaml"
PARTS = 12


@pytest.mark.usefixtures("operator")
def test_sub_routines_are_child_routines_collected_with_their_parent(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    harness: operators.Harness,
) -> None:
    harness.start_worker("reports-1", modules=["examples.reports"], slots=4)
    harness.start_worker("reports-2", modules=["examples.reports"], slots=4)

    k8s_cluster.kubectl("-n", k8s_namespace, "apply", "-f", str(EXAMPLE))
    parent = routines.wait_for_phase(k8s_api, k8s_namespace, "yearly-report", *routines.FINISHED)
    assert parent["status"]["phase"] == "Succeeded", parent["status"]
    assert parent["status"]["subroutines"] == {"total": PARTS, "succeeded": PARTS, "failed": 0, "running": 0}
    assert parent["status"]["result"]["parts"] == PARTS

    run_id = parent["status"]["runID"]
    uid = parent["metadata"]["uid"]

    def all_succeeded() -> list[dict[str, Any]] | None:
        found = routines.listed(k8s_api, k8s_namespace, selector=f"workpath.dev/parent-run={run_id}")
        succeeded = [child for child in found if routines.phase(child) == "Succeeded"]
        return succeeded if len(succeeded) == PARTS else None

    # The children's last statuses are written on their own: they may land just after the parent's.
    children = waiting.wait_for(all_succeeded, timeout=30, what=f"{PARTS} child Routines to show Succeeded")
    assert len(children) == PARTS
    for child in children:
        metadata, status = child["metadata"], child["status"]
        assert metadata["name"].startswith("yearly-report-")
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": "workpath.dev/v1alpha1",
                "kind": "Routine",
                "name": "yearly-report",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
        labels = metadata["labels"]
        assert labels["workpath.dev/parent-run"] == labels["workpath.dev/root-run"] == run_id
        assert labels["workpath.dev/run-id"] == status["runID"] != metadata["uid"]
        assert metadata["annotations"]["workpath.dev/parent-attempt"] == "1"
        assert metadata["annotations"]["workpath.dev/request-id"]
        assert child["spec"]["routineID"] == "reports.part"
        assert status["parentRunID"] == run_id
        assert status["worker"] in {"reports-1", "reports-2"}
        assert status["result"]["rows"] >= 100
    assert sorted(child["spec"]["params"]["n"] for child in children) == list(range(PARTS))

    k8s_cluster.kubectl("-n", k8s_namespace, "delete", "rt", "yearly-report", "--wait=true")
    waiting.wait_for(
        lambda: not routines.listed(k8s_api, k8s_namespace, selector=f"workpath.dev/root-run={run_id}"),
        timeout=60,
        what="the child Routines to be garbage-collected with their parent",
    )
