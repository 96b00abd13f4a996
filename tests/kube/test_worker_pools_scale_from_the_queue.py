"""WorkerPools on the test control plane, their pods run by the process-kubelet: the operator creates each pool's
Deployment, scales it from zero the moment runs are queued (clamped at maxReplicas, with ScalingLimited), the pods'
workers connect with the pod spec the operator wrote, every Routine succeeds, and after the scale-down delay the pool
is back at zero. A scale-down lets idle workers go and never interrupts a run."""

from __future__ import annotations

import pathlib
from typing import Any

import kubernetes.client

from tests.cluster import kubelet, waiting
from tests.kube import operators, routines, worker_pools

POOL = "blockers"


def test_a_pool_scales_from_zero_to_its_max_runs_everything_and_returns_to_zero(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    tmp_path: pathlib.Path,
    pool_operator: operators.OperatorProcess,
    markers: pathlib.Path,
) -> None:
    namespace = k8s_namespace
    gate = tmp_path / "gate"
    worker_pools.create(k8s_api, namespace, POOL, **worker_pools.pool_spec())
    worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0)
    assert worker_pools.pods(k8s_api, namespace, POOL) == []

    names = [f"job-{n:03d}" for n in range(100)]
    for name in names:
        routines.create(
            k8s_api, namespace, name, routineID="k8s.block", params={"markers": str(markers), "gate": str(gate)}
        )
    # 100 runs, 4 slots a worker: 25 workers called for, 5 allowed.
    worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 5, timeout=30)

    def limited_with_every_run() -> dict[str, Any] | None:
        c = worker_pools.condition(k8s_api, namespace, POOL, "ScalingLimited")
        return c if c and "calls for 25 workers" in c["message"] else None

    limited = waiting.wait_for(
        limited_with_every_run,
        timeout=30,
        what="the pool to say it is limited by maxReplicas, with all 100 runs counted",
    )
    assert (limited["status"], limited["reason"]) == ("True", "AtMaxReplicas")
    assert limited["message"] == "the queue calls for 25 workers; maxReplicas is 5"

    def five_pods() -> list[Any] | None:
        found = worker_pools.pods(k8s_api, namespace, POOL)
        return found if len(found) == 5 else None

    pods = waiting.wait_for(
        five_pods,
        timeout=30,
        what="five worker pods",
    )
    container = pods[0].spec.containers[0]
    assert container.command[:3] == ["workpath", "worker", "tests.kube.workload"]
    assert container.command[3:] == ["--pool", POOL, "--slots", "4", "--drain-timeout", "5"]
    waiting.wait_for(
        lambda: worker_pools.status(k8s_api, namespace, POOL).get("connectedWorkers") == 5,
        timeout=60,
        what="the five pods' workers to connect",
    )
    waiting.wait_for(
        lambda: len(list(markers.glob("started.*"))) == 20,
        timeout=30,
        what="20 runs (5 workers x 4 slots) to start",
    )
    waiting.wait_for(
        lambda: (
            (s := worker_pools.status(k8s_api, namespace, POOL))
            and (s.get("queued"), s.get("running"), s.get("busySlots"), s.get("desiredReplicas")) == (80, 20, 20, 5)
        ),
        timeout=10,
        what="the pool's status to say 80 queued, 20 running on 20 busy slots, 5 desired",
    )

    gate.touch()
    for name in names:
        routine = routines.wait_for_phase(k8s_api, namespace, name, *routines.FINISHED, timeout=60)
        assert routine["status"]["phase"] == "Succeeded", routine["status"]
    assert len(list(markers.glob("done.*"))) == 100
    assert len(list(markers.glob("started.*"))) == 100  # every run started exactly once

    worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0, timeout=30)
    waiting.wait_for(
        lambda: worker_pools.pods(k8s_api, namespace, POOL) == [], timeout=30, what="the pool's pods to go"
    )
    decisions = [message for reason, message in worker_pools.events(k8s_api, namespace, POOL)]
    assert any(m.endswith("→ 5 replicas (was 0)") or "→ 5 replicas (was" in m for m in decisions), decisions
    assert any("→ 0 replicas" in m for m in decisions), decisions
    ready = worker_pools.condition(k8s_api, namespace, POOL, "Ready")
    assert ready["status"] == "True", ready


def test_a_scale_down_lets_idle_workers_go_and_keeps_the_busy_one_until_its_run_is_done(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    tmp_path: pathlib.Path,
    pool_operator: operators.OperatorProcess,
    markers: pathlib.Path,
) -> None:
    namespace = k8s_namespace
    gate = tmp_path / "gate"
    spec = worker_pools.pool_spec(slots=1, minReplicas=3, maxReplicas=3, scaleDownDelaySeconds=1)
    worker_pools.create(k8s_api, namespace, POOL, **spec)
    waiting.wait_for(
        lambda: worker_pools.status(k8s_api, namespace, POOL).get("connectedWorkers") == 3,
        timeout=60,
        what="three connected workers",
    )
    routines.create(
        k8s_api, namespace, "long", routineID="k8s.block", params={"markers": str(markers), "gate": str(gate)}
    )
    busy = routines.wait_for_phase(k8s_api, namespace, "long", "Running")["status"]["worker"]
    idle = {pod.metadata.name for pod in worker_pools.pods(k8s_api, namespace, POOL)} - {busy}
    assert len(idle) == 2

    # Demand drops to the one running run: one worker is enough, and it must be the busy one.
    worker_pools.patch(k8s_api, namespace, POOL, {"minReplicas": 0})
    worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 1, timeout=20)
    waiting.wait_for(
        lambda: [pod.metadata.name for pod in worker_pools.pods(k8s_api, namespace, POOL)] == [busy],
        timeout=30,
        what=f"only the busy pod {busy} to stay",
    )
    (kept,) = worker_pools.pods(k8s_api, namespace, POOL)
    assert kept.metadata.annotations["controller.kubernetes.io/pod-deletion-cost"] == "1"
    routine = routines.get(k8s_api, namespace, "long")
    assert routine is not None
    assert (routine["status"]["phase"], routine["status"]["attempt"]) == ("Running", 1)
    let_go = [m for reason, m in worker_pools.events(k8s_api, namespace, POOL) if reason == "ScaledDown"]
    assert any(sorted(idle) == sorted(m.split("idle workers let go: ")[1].rstrip(")").split(", ")) for m in let_go)

    gate.touch()
    done = routines.wait_for_phase(k8s_api, namespace, "long", *routines.FINISHED, timeout=30)
    assert (done["status"]["phase"], done["status"]["attempt"], done["status"]["worker"]) == ("Succeeded", 1, busy)
    assert len(list(markers.glob("started.*"))) == 1  # it ran exactly once: never interrupted, never re-run
    worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0, timeout=20)


def test_a_pool_with_no_delay_is_back_at_zero_as_soon_as_its_last_run_ends(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    pool_operator: operators.OperatorProcess,
) -> None:
    namespace = k8s_namespace
    worker_pools.create(k8s_api, namespace, POOL, **worker_pools.pool_spec(scaleDownDelaySeconds=0))
    routines.create(k8s_api, namespace, "one", routineID="k8s.sized", params={"size": 3})
    done = routines.wait_for_phase(k8s_api, namespace, "one", *routines.FINISHED, timeout=60)
    assert done["status"]["phase"] == "Succeeded"
    # Nothing else happens in the pool: the freed slot alone must bring it back to zero.
    worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0, timeout=5)
