"""Routine resources as the cluster target reads and writes them: pure conversions, no I/O.

The operator owns the Routine's format (``crds/routines.workpath.dev.yaml``, ``workpath_operator.kube.resources``);
the worker package may not import the operator's, so the few rules the client needs are repeated here, and the
client's tests on the test control plane check them against the operator's Routines.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from workpath import directives
from workpath.clients import frames

Body = Mapping[str, Any]

GROUP = "workpath.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Routine"
API = f"/apis/{GROUP}/{VERSION}"
RESOURCE = f"routines.{GROUP}"
#: A child Routine's run ID is this label (a top-level one's is its uid), with its parent's run ID beside it.
RUN_ID_LABEL = "workpath.dev/run-id"
PARENT_RUN_LABEL = "workpath.dev/parent-run"
#: Who wrote a Routine's fields, as ``kubectl get rt NAME --show-managed-fields`` shows it.
FIELD_MANAGER = "workpath-client"
#: The condition whose reason and message say where a run is (Queued, Started, Retrying...).
RUNNING_CONDITION = "Running"
#: The error type of a run whose Routine was deleted before it finished (the operator cancelled it).
DELETED = "RoutineDeleted"

_NAME_STEM = 200


def routines_path(namespace: str) -> str:
    return f"{API}/namespaces/{namespace}/routines"


def routine_path(namespace: str, name: str) -> str:
    return f"{routines_path(namespace)}/{name}"


def is_run_id(text: str) -> bool:
    """Whether ``text`` is a run ID (a UUID) rather than a Routine's name."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def routine_of(spec: frames.RunSpec, *, labels: Mapping[str, str], annotations: Mapping[str, str]) -> dict[str, Any]:
    """The Routine of a run: named after its routine ID (as the operator's runs API names them), with the client's
    labels and annotations."""
    metadata: dict[str, Any] = {"generateName": name_stem(spec.routine_id) + "-"}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def name_stem(routine_id: str) -> str:
    """A routine ID made a valid start of a Routine's name (``reports.Yearly_sum`` -> ``reports.yearly-sum``)."""
    stem = re.sub(r"[^a-z0-9.-]+", "-", routine_id.lower())
    stem = re.sub(r"([.-])[.-]+", r"\1", stem)[:_NAME_STEM].strip(".-")
    return stem or "run"


def run_id_of(body: Body) -> directives.RunID:
    """The run ID of a Routine: the uid for a top-level Routine, the run-id label for a child."""
    metadata = body["metadata"]
    labels = metadata.get("labels") or {}
    if RUN_ID_LABEL in labels and PARENT_RUN_LABEL in labels:
        return directives.RunID(labels[RUN_ID_LABEL])
    return directives.RunID(metadata["uid"])


def ref_of(body: Body) -> frames.RoutineRef:
    metadata = body["metadata"]
    return frames.RoutineRef(namespace=metadata["namespace"], name=metadata["name"])


def where(body: Body) -> str:
    return f"{body['metadata'].get('namespace')}/{body['metadata'].get('name')}"


def phase_of(body: Body) -> frames.Phase:
    """The phase in the Routine's status; Pending until the operator wrote one."""
    try:
        return frames.Phase((body.get("status") or {}).get("phase") or frames.Phase.PENDING)
    except ValueError:
        return frames.Phase.PENDING


def status_of(body: Body) -> frames.RunStatus:
    """The run as the Routine shows it (a Routine without a status yet is a Pending run)."""
    metadata = body["metadata"]
    status = body.get("status") or {}
    running = next(
        (c for c in status.get("conditions") or () if isinstance(c, Mapping) and c.get("type") == RUNNING_CONDITION),
        {},
    )
    return frames.RunStatus.model_validate(
        {
            **status,
            "phase": phase_of(body),
            "runID": status.get("runID") or run_id_of(body),
            "routineID": (body.get("spec") or {}).get("routineID") or "",
            "createdAt": status.get("createdAt") or metadata.get("creationTimestamp"),
            "reason": running.get("reason", ""),
            "message": running.get("message", ""),
        }
    )


def outcome_of(body: Body) -> frames.Outcome | None:
    """How the Routine's run ended, or None while it has not."""
    phase = phase_of(body)
    if not phase.finished:
        return None
    status = body.get("status") or {}
    error = status.get("error")
    return frames.Outcome(
        request_id=0,
        run_id=run_id_of(body),
        phase=phase,
        result=status.get("result"),
        error=directives.ErrorInfo.model_validate(error) if isinstance(error, Mapping) else None,
        routine_id=(body.get("spec") or {}).get("routineID"),
    )


def deleted_outcome(body: Body, *, why: str = "was deleted") -> frames.Outcome:
    """The outcome of a run whose Routine is gone: as it ended if it had, else cancelled (the operator cancels
    the run of a deleted Routine)."""
    finished = outcome_of(body)
    if finished is not None:
        return finished
    return frames.Outcome(
        request_id=0,
        run_id=run_id_of(body),
        phase=frames.Phase.CANCELLED,
        error=directives.ErrorInfo(
            type=DELETED, message=f"its Routine {where(body)} {why} before the run finished", retryable=False
        ),
        routine_id=(body.get("spec") or {}).get("routineID"),
    )
