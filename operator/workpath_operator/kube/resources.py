"""Routine resources and runs: names, labels, and the conversions between the two.

Pure functions, no I/O. A top-level run's ID is its Routine's ``metadata.uid``,
stable from the moment the Routine exists (before any status is written) and
across operator restarts. A sub-routine's run ID is a uuid4 minted by the
dispatcher; it lives in the child Routine's ``workpath.dev/run-id`` label, next to
what rebuilds the parent/child link after a restart (parent and root run labels,
request ID and parent attempt annotations).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pydantic

from workpath import directives, errors
from workpath_operator.service import runs

GROUP = "workpath.dev"
VERSION = "v1alpha1"
PLURAL = "routines"
KIND = "Routine"
API_VERSION = f"{GROUP}/{VERSION}"

RUN_ID_LABEL = "workpath.dev/run-id"
PARENT_RUN_LABEL = "workpath.dev/parent-run"
ROOT_RUN_LABEL = "workpath.dev/root-run"
REQUEST_ID_ANNOTATION = "workpath.dev/request-id"
PARENT_ATTEMPT_ANNOTATION = "workpath.dev/parent-attempt"

#: Condition types, each with a reason taken from the run's (a :class:`runs.Reason`: Queued, Started, ...).
RUNNING = "Running"
SUCCEEDED = "Succeeded"

MAX_NAME = 253

Body = Mapping[str, Any]


class InvalidRoutineError(errors.WorkpathError):
    """A Routine the API server accepted but the operator cannot run (its spec does not make a run)."""


def key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def is_child(body: Body) -> bool:
    """Whether the Routine was made by the operator for a sub-routine."""
    labels = body["metadata"].get("labels") or {}
    return RUN_ID_LABEL in labels and PARENT_RUN_LABEL in labels


def run_id_of(body: Body) -> directives.RunID:
    """The run ID of a Routine: the uid for a top-level Routine, the run-id label for a child."""
    metadata = body["metadata"]
    if is_child(body):
        return directives.RunID(metadata["labels"][RUN_ID_LABEL])
    return directives.RunID(metadata["uid"])


def spec_of(body: Body) -> runs.RunSpec:
    """The run spec of a Routine; :class:`InvalidRoutineError` says what is wrong with it."""
    try:
        return runs.RunSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
            for problem in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise InvalidRoutineError(f"the Routine's spec cannot be run: {problems}") from None


def restore(body: Body) -> runs.Run:
    """The run a Routine stands for, rebuilt from its spec, labels and status (after a restart).

    A Routine without a status (the operator stopped before writing it) is a new, pending run.
    """
    spec = spec_of(body)
    metadata = body["metadata"]
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    child = is_child(body)
    parent_run_id = directives.RunID(labels[PARENT_RUN_LABEL]) if child else None
    root_run_id = directives.RunID(labels.get(ROOT_RUN_LABEL) or labels[PARENT_RUN_LABEL]) if child else None
    request = annotations.get(REQUEST_ID_ANNOTATION)
    request_id = directives.RequestID(request) if request is not None else None
    parent_attempt = _int(annotations.get(PARENT_ATTEMPT_ANNOTATION))
    where = key(metadata["namespace"], metadata["name"])
    status = body.get("status") or {}
    if not status.get("runID") or not status.get("phase"):
        return runs.Run(
            run_id=run_id_of(body),
            spec=spec,
            created_at=directives.now(),
            key=where,
            parent_run_id=parent_run_id,
            root_run_id=root_run_id,
            request_id=request_id,
            parent_attempt=parent_attempt,
        )
    running = _condition(status, RUNNING)
    try:
        view = runs.RunStatus.model_validate(
            {
                **status,
                "routineID": spec.routine_id,
                "parentRunID": status.get("parentRunID") or parent_run_id,
                "reason": running.get("reason", ""),
                "message": running.get("message", ""),
            }
        )
    except pydantic.ValidationError as exc:
        raise InvalidRoutineError(f"the Routine's status cannot be read: {exc.errors()[0]['msg']}") from None
    return runs.from_status(
        spec, view, key=where, root_run_id=root_run_id, request_id=request_id, parent_attempt=parent_attempt
    )


def child_name(parent_name: str, run_id: str) -> str:
    """The name of a sub-routine's Routine: the parent's name and 12 hex digits of the run ID."""
    suffix = run_id.replace("-", "")[:12]
    stem = parent_name[: MAX_NAME - len(suffix) - 1].rstrip(".-")
    return f"{stem}-{suffix}"


def child_routine(child: runs.Run, *, namespace: str, name: str, parent_name: str, parent_uid: str) -> dict[str, Any]:
    """The Routine of a sub-routine run: owned by its parent's Routine, labelled with the run's lineage."""
    assert child.parent_run_id is not None, "only a sub-routine has a child Routine"
    annotations = {PARENT_ATTEMPT_ANNOTATION: str(child.parent_attempt)}
    if child.request_id is not None:
        annotations[REQUEST_ID_ANNOTATION] = child.request_id
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                RUN_ID_LABEL: child.run_id,
                PARENT_RUN_LABEL: child.parent_run_id,
                ROOT_RUN_LABEL: child.root_run_id or child.parent_run_id,
            },
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": parent_name,
                    "uid": parent_uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": child.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


class Conditions:
    """The conditions of one Routine; each keeps its ``lastTransitionTime`` until its status changes.

    - ``Running``: True while an attempt runs; otherwise False, with why (Queued, Retrying, Succeeded...).
    - ``Succeeded``: Unknown until the run is finished, then True or False (reason Failed or Cancelled).
    """

    __slots__ = ("_since",)

    def __init__(self, existing: list[Mapping[str, Any]] | None = None) -> None:
        self._since: dict[str, tuple[str, str]] = {
            str(c["type"]): (str(c["status"]), str(c.get("lastTransitionTime") or ""))
            for c in existing or ()
            if "type" in c and "status" in c
        }

    def render(self, run: runs.Run, *, generation: int, now: str) -> list[dict[str, Any]]:
        phase = run.phase
        running = "True" if phase is runs.Phase.RUNNING else "False"
        succeeded = "True" if phase is runs.Phase.SUCCEEDED else "False" if phase.finished else "Unknown"
        reason = run.reason or phase.value
        message = run.message or _default_message(run)
        return [
            self._one(RUNNING, running, reason, message, generation, now),
            self._one(SUCCEEDED, succeeded, reason, message, generation, now),
        ]

    def render_invalid(self, message: str, *, generation: int, now: str) -> list[dict[str, Any]]:
        return [
            self._one(RUNNING, "False", runs.Reason.INVALID_SPEC, message, generation, now),
            self._one(SUCCEEDED, "False", runs.Reason.INVALID_SPEC, message, generation, now),
        ]

    def _one(self, kind: str, status: str, reason: str, message: str, generation: int, now: str) -> dict[str, Any]:
        previous = self._since.get(kind)
        since = previous[1] if previous is not None and previous[0] == status and previous[1] else now
        self._since[kind] = (status, since)
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }


def status_of(run: runs.Run, *, conditions: Conditions, generation: int) -> dict[str, Any]:
    """The Routine's whole ``status`` for the run as it is now (absent values are left out)."""
    now = timestamp(directives.now())
    status: dict[str, Any] = {
        "phase": run.phase.value,
        "runID": run.run_id,
        "attempt": run.attempt,
        "createdAt": timestamp(run.created_at),
        "conditions": conditions.render(run, generation=generation, now=now),
        "observedGeneration": generation,
    }
    if run.parent_run_id is not None:
        status["parentRunID"] = run.parent_run_id
    if run.worker is not None:
        status["worker"] = run.worker
    if run.started_at is not None:
        status["startedAt"] = timestamp(run.started_at)
    if run.completed_at is not None:
        status["completedAt"] = timestamp(run.completed_at)
        if run.run_time is not None:
            status["runTimeSeconds"] = round(run.run_time, 6)
        if run.round_trip_time is not None:
            status["roundTripSeconds"] = round(run.round_trip_time, 6)
    if run.phase is runs.Phase.SUCCEEDED and run.result is not None:
        status["result"] = run.result
    if run.error is not None:
        status["error"] = {"type": run.error.type, "message": run.error.message, "retryable": run.error.retryable}
    if run.children_total:
        status["subroutines"] = {
            "total": run.children_total,
            "succeeded": run.children_succeeded,
            "failed": run.children_failed,
            "running": run.children_running,
        }
    return status


def invalid_status(body: Body, error: InvalidRoutineError, *, conditions: Conditions) -> dict[str, Any]:
    """A Failed status for a Routine whose spec cannot be run: final, never retried."""
    now = directives.now()
    stamp = timestamp(now)
    generation = int(body["metadata"].get("generation") or 1)
    message = str(error)
    return {
        "phase": runs.Phase.FAILED.value,
        "runID": run_id_of(body),
        "attempt": 0,
        "createdAt": stamp,
        "completedAt": stamp,
        "roundTripSeconds": 0.0,
        "error": {"type": type(error).__name__, "message": message, "retryable": False},
        "conditions": conditions.render_invalid(message, generation=generation, now=stamp),
        "observedGeneration": generation,
    }


def finished_at(body: Body) -> datetime.datetime | None:
    """When the Routine's run finished, from its status; None while it has not."""
    status = body.get("status") or {}
    if status.get("phase") not in {p.value for p in runs.Phase if p.finished} or not status.get("completedAt"):
        return None
    try:
        return datetime.datetime.fromisoformat(str(status["completedAt"]))
    except ValueError:
        return None


def ttl_of(body: Body) -> int | None:
    """``spec.ttlSecondsAfterFinished``, when it is a usable number."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    return ttl if isinstance(ttl, int) and ttl >= 0 else None


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with microseconds: ``2026-10-01T12:00:00.123456Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def _default_message(run: runs.Run) -> str:
    if run.phase is runs.Phase.RUNNING:
        return f"attempt {run.attempt} is running on {run.worker}"
    if run.phase is runs.Phase.SUCCEEDED:
        return "the routine returned"
    return ""


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
