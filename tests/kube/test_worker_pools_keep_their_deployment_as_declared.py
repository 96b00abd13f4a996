"""A WorkerPool's Deployment is the operator's: deleted or edited by hand, it comes back as the pool declares it;
a spec change rolls it; the pool's deletion takes it along. A pool whose workers cannot start says so, and its
Routines wait, Pending with the reason, losing nothing."""

from __future__ import annotations

import kubernetes.client

from tests.cluster import kubelet, waiting
from tests.kube import operators, routines, worker_pools

POOL = "keepers"


def _reason(routine: dict[str, object]) -> str | None:
    try:
        return str(routines.condition(routine, "Succeeded")["reason"])
    except AssertionError:
        return None


def test_the_deployment_is_restored_rolled_and_deleted_with_its_pool(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    pool_operator: operators.OperatorProcess,
) -> None:
    namespace = k8s_namespace
    apps = kubernetes.client.AppsV1Api(k8s_api)
    pool = worker_pools.create(k8s_api, namespace, POOL, **worker_pools.pool_spec())
    first = waiting.wait_for(
        lambda: worker_pools.deployment(k8s_api, namespace, POOL), timeout=10, what="the pool's Deployment"
    )
    (owner,) = first.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "WorkerPool",
        POOL,
        pool["metadata"]["uid"],
        True,
    )

    apps.delete_namespaced_deployment(f"{POOL}-workers", namespace)
    waiting.wait_for(
        lambda: (
            (d := worker_pools.deployment(k8s_api, namespace, POOL)) is not None
            and d.metadata.uid != first.metadata.uid
        ),
        timeout=10,
        what="the Deployment deleted by hand to be created again",
    )

    apps.patch_namespaced_deployment(
        f"{POOL}-workers",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "someone/else:1"}]}}}},
    )
    waiting.wait_for(
        lambda: (
            worker_pools.deployment(k8s_api, namespace, POOL).spec.template.spec.containers[0].image
            == "workpath/worker:test"
        ),
        timeout=10,
        what="the hand-edited image to be put back",
    )

    worker_pools.patch(k8s_api, namespace, POOL, {"slots": 7})
    waiting.wait_for(
        lambda: "7" in worker_pools.deployment(k8s_api, namespace, POOL).spec.template.spec.containers[0].command,
        timeout=10,
        what="a spec change to roll the pod template (--slots 7)",
    )

    worker_pools.delete(k8s_api, namespace, POOL)
    waiting.wait_for(
        lambda: worker_pools.deployment(k8s_api, namespace, POOL) is None,
        timeout=20,
        what="the Deployment to go with its pool",
    )


def test_a_pool_whose_workers_cannot_start_says_so_and_its_routines_wait(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    pool_operator: operators.OperatorProcess,
) -> None:
    namespace = k8s_namespace
    routines.create(k8s_api, namespace, "nobody", routineID="k8s.sized", params={"size": 1})
    waiting_routine = routines.wait_for(
        k8s_api,
        namespace,
        "nobody",
        lambda r: routines.phase(r) == "Pending" and _reason(r) == "NoWorker",
        what="to say no worker and no pool can run it",
    )
    assert "no WorkerPool serves it" in routines.condition(waiting_routine, "Succeeded")["message"]

    spec = worker_pools.pool_spec(modules=["no_such_module_here"], maxReplicas=1)
    worker_pools.create(k8s_api, namespace, POOL, **spec)
    reason = waiting.wait_for(
        lambda: (
            (c := worker_pools.condition(k8s_api, namespace, POOL, "Ready")).get("reason") == "WorkersNotStarting" and c
        ),
        timeout=60,
        what="the pool to say its workers do not start",
    )
    assert reason["status"] == "False"
    routine = routines.get(k8s_api, namespace, "nobody")
    assert routine is not None
    assert routines.phase(routine) == "Pending"
    assert routines.condition(routine, "Succeeded")["message"] == f"waiting for a worker of pool '{POOL}'"

    # Fixed: the same Routine runs, nothing was lost.
    worker_pools.patch(k8s_api, namespace, POOL, {"modules": ["tests.kube.workload"]})
    done = routines.wait_for_phase(k8s_api, namespace, "nobody", *routines.FINISHED, timeout=60)
    assert done["status"]["phase"] == "Succeeded"
