"""Scaling a Deployment down deletes the pod with the lowest controller.kubernetes.io/pod-deletion-cost first.

The pods run as local processes on the process-kubelet; the deleted pod's process gets SIGTERM.
"""

from __future__ import annotations

import kubernetes.client

from tests.cluster import kubelet, lookups, manifests, models, waiting

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def test_scale_down_deletes_the_pod_with_the_lowest_deletion_cost(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, process_kubelet: kubelet.ProcessKubelet
) -> None:
    apps = kubernetes.client.AppsV1Api(k8s_api)
    core = kubernetes.client.CoreV1Api(k8s_api)
    policy = kubernetes.client.PolicyV1Api(k8s_api)
    apps.create_namespaced_deployment(
        k8s_namespace,
        kubernetes.client.V1Deployment.model_validate(
            manifests.python_deployment("workers", manifests.SLEEPER, replicas=3)
        ),
    )

    def three_available_pods() -> list[str] | None:
        deployment = apps.read_namespaced_deployment_status("workers", k8s_namespace)
        pods = core.list_namespaced_pod(k8s_namespace, label_selector="app=workers").items
        # Ready, and each process has said "started": its SIGTERM handler is set (Python may still be starting).
        ready = sorted(
            models.name(pod)
            for pod in pods
            if lookups.pod_is_ready(pod) and "started" in process_kubelet.logs(k8s_namespace, models.name(pod))
        )
        return ready if len(ready) == 3 and models.required(deployment.status).available_replicas == 3 else None

    names = waiting.wait_for(three_available_pods, timeout=60, what="3 available pods of Deployment workers")
    cheapest = names[1]  # Neither the first nor the last by name, so that no other ordering picks it by chance.
    costs = {names[0]: "100", cheapest: "-100", names[2]: "50"}
    for name, cost in costs.items():
        patch = {"metadata": {"annotations": {DELETION_COST: cost}, "labels": {"costed": "true"}}}
        core.patch_namespaced_pod(name, k8s_namespace, patch)
    # A barrier: the disruption controller reads pods from the controller-manager's shared pod informer, as the
    # ReplicaSet controller does. Once it counts the three relabelled pods, the annotations are in that cache.
    policy.create_namespaced_pod_disruption_budget(
        k8s_namespace,
        kubernetes.client.V1PodDisruptionBudget.model_validate(
            {
                "metadata": {"name": "barrier"},
                "spec": {"minAvailable": 0, "selector": {"matchLabels": {"costed": "true"}}},
            }
        ),
    )
    waiting.wait_for(
        lambda: (
            models.required(
                policy.read_namespaced_pod_disruption_budget_status("barrier", k8s_namespace).status
            ).current_healthy
            == 3
        ),
        timeout=30,
        what="the controller-manager to see the annotated pods",
    )

    apps.patch_namespaced_deployment_scale("workers", k8s_namespace, {"spec": {"replicas": 2}})

    waiting.wait_for(
        lambda: lookups.is_gone(core.read_namespaced_pod, cheapest, k8s_namespace),
        timeout=30,
        what=f"pod {cheapest} (deletion cost -100) to be deleted",
    )
    remaining = core.list_namespaced_pod(k8s_namespace, label_selector="app=workers").items
    assert sorted(models.name(pod) for pod in remaining) == [names[0], names[2]]
    assert all(models.required(pod.metadata).deletion_timestamp is None for pod in remaining)
    process = process_kubelet.process(k8s_namespace, cheapest)
    assert process.signals == ("SIGTERM",)
    assert process.returncode == 0
    assert "got SIGTERM" in process_kubelet.logs(k8s_namespace, cheapest)
