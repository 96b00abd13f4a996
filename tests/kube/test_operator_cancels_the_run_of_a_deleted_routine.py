"""Deleting a Running Routine cancels its run on the worker (the routine sees CancelledError) at once; nothing
writes to the Routine afterwards and it stays gone (no finalizer holds it)."""

from __future__ import annotations

import pathlib

import kubernetes.client
import pytest

from tests.cluster import waiting
from tests.kube import operators, routines


@pytest.mark.usefixtures("operator")
def test_deleting_a_running_routine_cancels_its_job(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    tmp_path: pathlib.Path,
    harness: operators.Harness,
    markers: pathlib.Path,
) -> None:
    gate = tmp_path / "gate"
    worker = harness.start_worker("blocker-1", slots=2)
    routines.create(
        k8s_api, k8s_namespace, "long", routineID="k8s.block", params={"markers": str(markers), "gate": str(gate)}
    )
    running = routines.wait_for_phase(k8s_api, k8s_namespace, "long", "Running")
    run_id = running["status"]["runID"]
    assert running["metadata"].get("finalizers") is None

    routines.delete(k8s_api, k8s_namespace, "long")
    routines.wait_until_gone(k8s_api, k8s_namespace, "long", timeout=10)
    waiting.wait_for(
        lambda: (markers / f"cancelled.{run_id}").exists(),
        timeout=15,
        what="the routine to be cancelled on the worker",
    )
    assert f"cancelling run {run_id}: its Routine {k8s_namespace}/long was deleted" in worker.output()
    assert not list(markers.glob(f"done.{run_id}.*"))
    assert routines.get(k8s_api, k8s_namespace, "long") is None
    assert len(list(markers.glob(f"started.{run_id}.*"))) == 1
