"""The status of a WorkerPool: its conditions, and why its workers do not start when they do not.

Pure functions, no I/O; the controller (:mod:`~workpath_operator.kube.pooling`) writes what they give.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Final

Body = Mapping[str, Any]

NOT_STARTING_REASONS: Final = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"}
)
"""Container waiting reasons that mean a pool's workers cannot start (the Ready condition says so)."""


def not_starting(pods: Iterable[Body]) -> str:
    """Why a pool's pods do not start, if they do not (crash loops, image pulls, failed processes); "" if they do."""
    for pod in pods:
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in NOT_STARTING_REASONS:
                return f"pod {pod['metadata']['name']}: {waiting['reason']}: {waiting.get('message', '')}".strip()
        if status.get("phase") == "Failed":
            return f"pod {pod['metadata']['name']} failed: {status.get('message') or status.get('reason') or 'exited'}"
    return ""


def condition(previous: Mapping[str, Body], kind: str, value: bool, reason: str, message: str) -> dict[str, Any]:
    """A status condition; ``previous`` (by type) keeps its transition time while nothing about it changed."""
    text = "True" if value else "False"
    old = previous.get(kind)
    if old is not None and old.get("status") == text and old.get("reason") == reason and old.get("message") == message:
        return dict(old)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"type": kind, "status": text, "reason": reason, "message": message, "lastTransitionTime": now}
