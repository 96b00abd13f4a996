"""A worker pod says when its worker's process is gone and why: deleted, evicted, OOMKilled, an exit code or a
signal, a restart; a pod being deleted gracefully (its worker draining) is not a loss yet."""

from __future__ import annotations

from typing import Any

import pytest

from workpath_operator.kube import worker_pods


def pod(
    *,
    phase: str = "Running",
    state: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
    deleting: bool = False,
    **status: Any,
) -> dict[str, Any]:
    container = {
        "name": "worker",
        "state": state or {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
        "lastState": last or {},
        "restartCount": restarts,
    }
    metadata: dict[str, Any] = {"namespace": "ns", "name": "w-1", "uid": "u-1"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase, "containerStatuses": [container], **status}}


def killed(code: int, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason}}


@pytest.mark.parametrize(
    ("event", "body", "message"),
    [
        ("DELETED", pod(), "pod ns/w-1 was Deleted"),
        ("DELETED", pod(state=killed(137)), "pod ns/w-1 was Deleted (was killed by SIGKILL (exit code 137))"),
        (
            "MODIFIED",
            pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory."),
            "pod ns/w-1 was Evicted: The node was low on resource: memory.",
        ),
        (
            "MODIFIED",
            pod(state=killed(137, "OOMKilled")),
            "pod ns/w-1: its container worker was OOMKilled (exit code 137)",
        ),
        ("MODIFIED", pod(phase="Failed", state=killed(1)), "pod ns/w-1 Failed: exited with code 1"),
        (None, pod(state=killed(0, "Completed")), "pod ns/w-1: its container worker exited with code 0"),
    ],
)
def test_a_gone_process_is_named_with_its_cause(event: str | None, body: dict[str, Any], message: str) -> None:
    cause = worker_pods.loss_of(event, body, restarts_seen=0)
    assert cause == worker_pods.Cause(message)


def test_a_restart_is_a_loss_of_the_old_process_only() -> None:
    restarted = pod(restarts=1, last=killed(137, "OOMKilled"))
    assert worker_pods.loss_of("MODIFIED", restarted, restarts_seen=0) == worker_pods.Cause(
        "pod ns/w-1: its container worker was OOMKilled (exit code 137) and restarted", restarted=True
    )
    assert worker_pods.loss_of("MODIFIED", restarted, restarts_seen=1) is None  # seen already
    assert worker_pods.loss_of(None, restarted, restarts_seen=None) is None  # before this operator started


@pytest.mark.parametrize("body", [pod(), pod(deleting=True), pod(phase="Pending", state={"waiting": {}})])
def test_a_running_or_draining_worker_is_not_lost(body: dict[str, Any]) -> None:
    assert worker_pods.loss_of("MODIFIED", body, restarts_seen=0) is None
