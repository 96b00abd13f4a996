"""The operator-restart flow (docs/architecture.md): the operator is SIGKILLed while Routines are Running and
Pending, and Routines change while it is down.
A new operator rebuilds its state from the Routines and from the workers' `v1.ready` reports: the running run is
adopted (not started again), the pending ones run once, the one created meanwhile runs once, and the ones deleted
meanwhile do not run (the running one is cancelled on the worker). Sub-routines survive too: their child Routines
carry what links them to their parent again, and the parent gets their results."""

from __future__ import annotations

import pathlib
from typing import Any

import kubernetes.client

from tests.cluster import waiting
from tests.kube import operators, routines


def _started(markers: pathlib.Path, run_id: str) -> list[pathlib.Path]:
    return list(markers.glob(f"started.{run_id}.*"))


def test_restarted_operator_adopts_running_runs_and_runs_the_rest_once(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    tmp_path: pathlib.Path,
    harness: operators.Harness,
    markers: pathlib.Path,
) -> None:
    gate = tmp_path / "gate"
    params = {"markers": str(markers), "gate": str(gate)}
    first = harness.start_operator()
    harness.start_worker("blocker-1", slots=2)
    for name in ("r1", "r2", "r3", "r4"):
        routines.create(k8s_api, k8s_namespace, name, routineID="k8s.block", params=params)
    before = {
        name: routines.wait_for_phase(k8s_api, k8s_namespace, name, phase)
        for name, phase in (("r1", "Running"), ("r2", "Running"), ("r3", "Pending"), ("r4", "Pending"))
    }
    run_ids = {name: routine["status"]["runID"] for name, routine in before.items()}
    waiting.wait_for(
        lambda: all(_started(markers, run_ids[name]) for name in ("r1", "r2")),
        timeout=10,
        what="r1 and r2 to start on the worker",
    )

    first.kill()
    routines.delete(k8s_api, k8s_namespace, "r2")  # running: its worker must be told to cancel it
    routines.delete(k8s_api, k8s_namespace, "r4")  # pending: must never start
    r5 = routines.create(k8s_api, k8s_namespace, "r5", routineID="k8s.block", params=params)
    run_ids["r5"] = r5["metadata"]["uid"]

    harness.start_operator()
    waiting.wait_for(
        lambda: (markers / f"cancelled.{run_ids['r2']}").exists(),
        timeout=20,
        what="the worker to cancel r2, whose Routine was deleted while no operator ran",
    )
    routines.wait_for_phase(k8s_api, k8s_namespace, "r3", "Running", timeout=20)
    gate.touch()
    after = {
        name: routines.wait_for_phase(k8s_api, k8s_namespace, name, *routines.FINISHED) for name in ("r1", "r3", "r5")
    }

    for name, routine in after.items():
        status = routine["status"]
        assert status["phase"] == "Succeeded", (name, status)
        assert status["attempt"] == 1, (name, status)
        assert status["runID"] == run_ids[name]
        assert len(_started(markers, run_ids[name])) == 1, f"{name} started {_started(markers, run_ids[name])}"
    assert after["r1"]["status"]["createdAt"] == before["r1"]["status"]["createdAt"]
    assert after["r1"]["status"]["startedAt"] == before["r1"]["status"]["startedAt"]
    assert len(_started(markers, run_ids["r2"])) == 1
    assert not _started(markers, run_ids["r4"])
    assert routines.get(k8s_api, k8s_namespace, "r2") is None
    assert routines.get(k8s_api, k8s_namespace, "r4") is None


def test_restarted_operator_relinks_sub_routines_to_their_waiting_parent(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    tmp_path: pathlib.Path,
    harness: operators.Harness,
    markers: pathlib.Path,
) -> None:
    gate = tmp_path / "gate"
    parts = 3
    first = harness.start_operator()
    harness.start_worker("fan-1", slots=2)
    harness.start_worker("fan-2", slots=2)
    routines.create(
        k8s_api,
        k8s_namespace,
        "fan",
        routineID="k8s.fan",
        params={"markers": str(markers), "gate": str(gate), "parts": parts},
    )
    parent = routines.wait_for(
        k8s_api,
        k8s_namespace,
        "fan",
        lambda r: (r.get("status") or {}).get("subroutines", {}).get("running") == parts,
        what=f"to have {parts} sub-routines running",
    )
    run_id = parent["status"]["runID"]
    selector = f"workpath.dev/parent-run={run_id}"

    def all_running() -> list[dict[str, Any]] | None:
        found = routines.listed(k8s_api, k8s_namespace, selector=selector)
        running = [child for child in found if routines.phase(child) == "Running"]
        return running if len(running) == parts else None

    children = waiting.wait_for(all_running, timeout=20, what="the child Routines to show Running")
    child_ids = {child["status"]["runID"] for child in children}

    first.kill()
    harness.start_operator()
    gate.touch()
    done = routines.wait_for_phase(k8s_api, k8s_namespace, "fan", *routines.FINISHED, timeout=30)

    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["attempt"] == 1
    assert done["status"]["subroutines"] == {"total": parts, "succeeded": parts, "failed": 0, "running": 0}
    assert done["status"]["result"] == ["opened on attempt 1"] * parts
    finished = routines.listed(k8s_api, k8s_namespace, selector=selector)
    assert {child["status"]["runID"] for child in finished} == child_ids
    for child_id in child_ids:
        assert len(_started(markers, child_id)) == 1, child_id
        assert (markers / f"done.{child_id}.1").exists()
