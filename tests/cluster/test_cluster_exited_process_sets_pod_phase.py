"""A pod's process that exits ends the pod: Succeeded on exit code 0, Failed otherwise, with the exit code."""

from __future__ import annotations

import kubernetes.client
import pytest

from tests.cluster import kubelet, manifests, models, waiting


@pytest.mark.parametrize(
    ("code", "phase", "exit_code", "reason"),
    [
        ("print('bye')", "Succeeded", 0, "Completed"),
        ("print('bye'); raise SystemExit(3)", "Failed", 3, "Error"),
        ("print('bye', flush=True); import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "Failed", 137, "Error"),
    ],
    ids=["exit-0", "exit-3", "killed"],
)
def test_exited_process_sets_pod_phase_and_exit_code(
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    process_kubelet: kubelet.ProcessKubelet,
    code: str,
    phase: str,
    exit_code: int,
    reason: str,
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(
        k8s_namespace, kubernetes.client.V1Pod.model_validate(manifests.python_pod("exits", code))
    )

    def ended() -> kubernetes.client.V1Pod | None:
        found = core.read_namespaced_pod("exits", k8s_namespace)
        return found if models.required(found.status).phase == phase else None

    status = models.required(waiting.wait_for(ended, timeout=30, what=f"pod exits to be {phase}").status)

    container = models.required(status.container_statuses)[0]
    terminated = models.required(models.required(container.state).terminated)
    assert (terminated.exit_code, terminated.reason) == (exit_code, reason)
    assert container.ready is False
    assert not any(c.type == "Ready" and c.status == "True" for c in models.required(status.conditions))
    assert process_kubelet.logs(k8s_namespace, "exits") == "bye\n"
