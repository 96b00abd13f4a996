"""`--all-namespaces`: one operator serves the Routines of every namespace, and a sub-routine's child Routine is
created next to its parent, in the parent's namespace."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes.client
import pytest

from tests.cluster import controlplane
from tests.kube import operators, routines


@pytest.fixture
def other_namespace(k8s_cluster: controlplane.Cluster) -> Iterator[str]:
    name = k8s_cluster.create_namespace(prefix="operator-all-namespaces-other")
    yield name
    k8s_cluster.delete_namespace(name)


def test_one_operator_serves_routines_in_every_namespace(
    k8s_namespace: str,
    other_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    harness: operators.Harness,
) -> None:
    harness.start_operator(args=("--all-namespaces",), namespaced=False)
    harness.start_worker("reports-1", modules=["examples.reports"], slots=4)
    for namespace in (k8s_namespace, other_namespace):
        routines.create(
            k8s_api, namespace, "report", routineID="reports.build", params={"month": namespace, "parts": 2}
        )

    for namespace in (k8s_namespace, other_namespace):
        done = routines.wait_for_phase(k8s_api, namespace, "report", *routines.FINISHED)
        assert done["status"]["phase"] == "Succeeded", done["status"]
        assert done["status"]["result"]["month"] == namespace
        children = routines.listed(k8s_api, namespace, selector=f"workpath.dev/parent-run={done['status']['runID']}")
        assert len(children) == 2
