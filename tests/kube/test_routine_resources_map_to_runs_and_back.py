"""Routine resources and runs: the run ID of a Routine, its whole status from a run, the run again from that status
(after a restart), child Routines with their lineage, and the reason a spec cannot be run."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import pytest

from workpath import directives
from workpath_operator.kube import resources
from workpath_operator.service import runs

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
UID = "6f2b1c9e-1111-4222-8333-944445555666"
T0 = datetime.datetime(2026, 10, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def routine(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "october-report", "namespace": "analytics", "uid": UID, "generation": 1, **metadata},
        "spec": spec or {"routineID": "reports.build", "params": {"month": "2026-10"}},
    }


def finished_run() -> runs.Run:
    run = runs.Run(
        run_id=directives.RunID(UID), spec=resources.spec_of(routine()), created_at=T0, key="analytics/october-report"
    )
    run.phase = runs.Phase.SUCCEEDED
    run.attempt = 2
    run.worker = directives.WorkerID("worker-7")
    run.started_at = T0 + datetime.timedelta(seconds=1)
    run.completed_at = T0 + datetime.timedelta(seconds=3, microseconds=500)
    run.result = {"rows": 3}
    run.reason = "Succeeded"
    run.children_total = run.children_succeeded = 4
    return run


def test_a_top_level_routine_runs_under_its_uid_and_a_child_under_its_label() -> None:
    assert resources.run_id_of(routine()) == UID
    child_id = str(uuid.uuid4())
    labels = {resources.RUN_ID_LABEL: child_id, resources.PARENT_RUN_LABEL: UID}
    assert resources.run_id_of(routine(labels=labels)) == child_id
    assert resources.run_id_of(routine(labels={resources.RUN_ID_LABEL: child_id})) == UID  # no parent: not a child


def test_the_status_has_every_timestamp_duration_and_counter() -> None:
    status = resources.status_of(finished_run(), conditions=resources.Conditions(), generation=1)

    assert status["phase"] == "Succeeded"
    assert status["runID"] == UID
    assert (status["attempt"], status["worker"]) == (2, "worker-7")
    assert status["createdAt"] == "2026-10-01T12:00:00.123456Z"
    assert status["startedAt"] == "2026-10-01T12:00:01.123456Z"
    assert status["completedAt"] == "2026-10-01T12:00:03.123956Z"
    assert status["runTimeSeconds"] == 2.0005
    assert status["roundTripSeconds"] == 3.0005
    assert status["result"] == {"rows": 3}
    assert status["subroutines"] == {"total": 4, "succeeded": 4, "failed": 0, "running": 0}
    assert status["observedGeneration"] == 1
    assert "error" not in status and "parentRunID" not in status
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Running", "False", "Succeeded"),
        ("Succeeded", "True", "Succeeded"),
    ]


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    conditions = resources.Conditions()
    run = finished_run()
    run.phase, run.reason = runs.Phase.RUNNING, "Started"
    first = {c["type"]: c for c in conditions.render(run, generation=1, now="t1")}
    run.reason = "Adopted"
    second = {c["type"]: c for c in conditions.render(run, generation=1, now="t2")}
    run.phase, run.reason = runs.Phase.FAILED, "Failed"
    third = {c["type"]: c for c in conditions.render(run, generation=1, now="t3")}

    assert (first["Running"]["lastTransitionTime"], second["Running"]["lastTransitionTime"]) == ("t1", "t1")
    assert second["Running"]["reason"] == "Adopted"
    assert third["Running"]["lastTransitionTime"] == "t3"
    assert (first["Succeeded"]["status"], third["Succeeded"]["status"]) == ("Unknown", "False")
    assert third["Succeeded"]["lastTransitionTime"] == "t3"


def test_a_run_is_rebuilt_from_its_routine_after_a_restart() -> None:
    run = finished_run()
    run.phase, run.reason, run.completed_at, run.result = runs.Phase.RUNNING, "Started", None, None
    body = routine() | {"status": resources.status_of(run, conditions=resources.Conditions(), generation=1)}

    restored = resources.restore(body)

    assert restored.run_id == UID
    assert (restored.phase, restored.attempt, restored.worker) == (runs.Phase.RUNNING, 2, "worker-7")
    assert (restored.created_at, restored.started_at) == (run.created_at, run.started_at)
    assert restored.children_total == 4
    assert restored.reason == "Started"
    assert restored.key == "analytics/october-report"


def test_a_routine_without_status_is_a_new_pending_run_under_its_uid() -> None:
    restored = resources.restore(routine())
    assert (restored.run_id, restored.phase, restored.attempt, restored.worker) == (UID, runs.Phase.PENDING, 0, None)


def test_a_child_routine_is_owned_by_its_parent_and_carries_its_lineage() -> None:
    parent_id = directives.RunID(UID)
    child = runs.Run(
        run_id=directives.RunID(str(uuid.uuid4())),
        spec=runs.RunSpec.model_validate({"routineID": "reports.part", "params": {"n": 3}}),
        created_at=T0,
        parent_run_id=parent_id,
        root_run_id=parent_id,
        request_id=directives.RequestID("a1b2-7"),
        parent_attempt=1,
    )
    name = resources.child_name("october-report", child.run_id)
    body = resources.child_routine(
        child, namespace="analytics", name=name, parent_name="october-report", parent_uid=UID
    )

    assert name == f"october-report-{child.run_id.replace('-', '')[:12]}"
    metadata = body["metadata"]
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "workpath.dev/v1alpha1",
            "kind": "Routine",
            "name": "october-report",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert metadata["labels"] == {
        resources.RUN_ID_LABEL: child.run_id,
        resources.PARENT_RUN_LABEL: UID,
        resources.ROOT_RUN_LABEL: UID,
    }
    assert body["spec"]["routineID"] == "reports.part"

    restored = resources.restore(body | {"metadata": metadata | {"uid": str(uuid.uuid4())}})
    assert (restored.run_id, restored.parent_run_id, restored.root_run_id) == (child.run_id, UID, UID)
    assert (restored.request_id, restored.parent_attempt) == ("a1b2-7", 1)


def test_a_child_name_stays_a_valid_name_under_a_long_parent_name() -> None:
    parent = "a" * 240 + ".b-"
    name = resources.child_name(parent, str(uuid.uuid4()))
    assert len(name) <= 253
    assert DNS_SUBDOMAIN.match(name), name


def test_a_spec_that_cannot_run_says_what_is_wrong() -> None:
    with pytest.raises(resources.InvalidRoutineError) as raised:
        resources.spec_of(routine({"routineID": "reports.build", "experimental": True, "timeoutSeconds": -1}))
    message = str(raised.value)
    assert message.startswith("the Routine's spec cannot be run: ")
    assert "spec.experimental: Extra inputs are not permitted" in message
    assert "spec.timeoutSeconds: Input should be greater than 0" in message
