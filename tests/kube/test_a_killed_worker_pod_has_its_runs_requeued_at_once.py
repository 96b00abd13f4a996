"""Pod-aware worker loss: the process of a worker pod is SIGKILLed (as the OOM killer would); the operator, which
watches worker pods, sees its container terminated and queues its runs again at once, not after the 10-second
reconnect grace period: each Routine says WorkerLost with the cause, gets a WorkerLost Event, and succeeds exactly
once, on another worker pod."""

from __future__ import annotations

import datetime
import os
import pathlib
import signal
from typing import Any

import kubernetes.client

from tests.cluster import kubelet, waiting
from tests.kube import operators, routines

RUNS = 4
REQUEUED_WITHIN = 1.0


def worker_pod(name: str, harness: operators.Harness) -> kubernetes.client.V1Pod:
    """A worker pod as the chart makes them: the worker label, its worker ID from its name."""
    command = ["python", "-m", "workpath", "worker", operators.WORKLOAD, "--url", harness.url, "--slots", str(RUNS)]
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"workpath.dev/worker": "true"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "worker",
                    "image": "workpath/worker:test",
                    "command": [*command, "--backoff-cap", "0.5"],
                    "env": [
                        {"name": "WORKPATH_TOKEN", "value": harness.token},
                        {"name": "WORKPATH_WORKER_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "PYTHONPATH", "value": str(operators.REPO)},
                    ],
                }
            ],
        },
    }
    return kubernetes.client.V1Pod.model_validate(pod)


def test_a_sigkilled_worker_pod_has_its_runs_requeued_within_a_second(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    operator: operators.OperatorProcess,
    harness: operators.Harness,
    tmp_path: pathlib.Path,
) -> None:
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(k8s_namespace, worker_pod("worker-a", harness))
    names = [f"held-{n}" for n in range(RUNS)]
    for name in names:
        routines.create(
            k8s_api, k8s_namespace, name, routineID="k8s.block", params={"markers": str(markers), "gate": str(gate)}
        )
    running = {
        name: routines.wait_for(
            k8s_api, k8s_namespace, name, lambda r: (r.get("status") or {}).get("worker") == "worker-a"
            and routines.phase(r) == "Running", what="to run on worker-a", timeout=60,
        )
        for name in names
    }  # fmt: skip
    run_ids = {name: routine["status"]["runID"] for name, routine in running.items()}
    waiting.wait_for(
        lambda: len(list(markers.glob("started.*"))) == RUNS, timeout=10, what="every run to start on worker-a"
    )

    pid = process_kubelet.process(k8s_namespace, "worker-a").pid
    assert pid is not None
    killed_at = datetime.datetime.now(datetime.UTC)
    os.killpg(pid, signal.SIGKILL)

    lost = {
        name: routines.wait_for(
            k8s_api, k8s_namespace, name, lambda r: routines.condition(r, "Running")["reason"] == "WorkerLost",
            what="to say WorkerLost", timeout=5,
        )
        for name in names
    }  # fmt: skip
    delays = []
    for routine in lost.values():
        condition = routines.condition(routine, "Running")
        assert condition["status"] == "False" and routines.phase(routine) == "Pending"
        assert condition["message"].startswith(f"worker worker-a was lost: pod {k8s_namespace}/worker-a Failed: ")
        assert "killed by SIGKILL (exit code 137)" in condition["message"]
        delays.append((routines.moment(condition["lastTransitionTime"]) - killed_at).total_seconds())
    print(f"\nworker pod SIGKILLed: {RUNS} runs re-queued {min(delays) * 1000:.0f}-{max(delays) * 1000:.0f} ms after")
    assert max(delays) < REQUEUED_WITHIN, delays

    core.create_namespaced_pod(k8s_namespace, worker_pod("worker-b", harness))
    for name in names:
        routines.wait_for(
            k8s_api, k8s_namespace, name, lambda r: (r.get("status") or {}).get("worker") == "worker-b"
            and routines.phase(r) == "Running", what="to run again on worker-b", timeout=60,
        )  # fmt: skip
    gate.touch()
    for name in names:
        done = routines.wait_for_phase(k8s_api, k8s_namespace, name, *routines.FINISHED, timeout=30)
        assert (done["status"]["phase"], done["status"]["attempt"]) == ("Succeeded", 2)
        assert done["status"]["worker"] == "worker-b"
        assert "WorkerLost" in routines.wait_for_events(k8s_api, k8s_namespace, name, "WorkerLost")
    for run_id in run_ids.values():
        assert sorted(p.name for p in markers.glob(f"*.{run_id}.*")) == sorted(
            [f"done.{run_id}.2", *(p.name for p in markers.glob(f"started.{run_id}.*"))]
        )
        assert len(list(markers.glob(f"started.{run_id}.*"))) == 2  # attempt 1 on worker-a, attempt 2 on worker-b
        assert not (markers / f"done.{run_id}.1").exists()  # completed once, elsewhere
