"""WorkerPools in the operator tests: create them, read their Deployment, pods, status and Events."""

from __future__ import annotations

from typing import Any, cast

import kubernetes.client

from tests.cluster import manifests, waiting
from tests.kube import operators

LABEL = "workpath.dev/pool"


def pool_spec(**overrides: Any) -> dict[str, Any]:
    """A pool of workers of tests.kube.workload, run from this checkout by the process-kubelet."""
    spec: dict[str, Any] = {
        "image": "workpath/worker:test",
        "modules": ["tests.kube.workload"],
        "routines": ["k8s.*"],
        "slots": 4,
        "minReplicas": 0,
        "maxReplicas": 5,
        "scaleDownDelaySeconds": 2,
        "drainTimeoutSeconds": 5,
        "env": [
            {"name": "PYTHONPATH", "value": str(operators.REPO)},
            {"name": "WORKPATH_BACKOFF_CAP", "value": "0.5"},
        ],
    }
    return spec | overrides


def create(client: kubernetes.client.ApiClient, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = kubernetes.client.CustomObjectsApi(client).create_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, namespace, manifests.WORKER_POOLS, manifests.worker_pool(name, **spec)
    )
    return cast(dict[str, Any], body)


def get(client: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    body = kubernetes.client.CustomObjectsApi(client).get_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, namespace, manifests.WORKER_POOLS, name
    )
    return cast(dict[str, Any], body)


def patch(client: kubernetes.client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kubernetes.client.CustomObjectsApi(client).patch_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, namespace, manifests.WORKER_POOLS, name, {"spec": spec}
    )


def delete(client: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    kubernetes.client.CustomObjectsApi(client).delete_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, namespace, manifests.WORKER_POOLS, name
    )


def status(client: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = get(client, namespace, name).get("status") or {}
    return found


def condition(client: kubernetes.client.ApiClient, namespace: str, name: str, kind: str) -> dict[str, Any]:
    for entry in status(client, namespace, name).get("conditions") or []:
        if entry["type"] == kind:
            found: dict[str, Any] = entry
            return found
    return {}


def deployment(client: kubernetes.client.ApiClient, namespace: str, pool: str) -> Any:
    """The pool's Deployment, or None."""
    try:
        return kubernetes.client.AppsV1Api(client).read_namespaced_deployment(f"{pool}-workers", namespace)
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise


def command(client: kubernetes.client.ApiClient, namespace: str, pool: str) -> list[str]:
    """The worker container's command in the pool's Deployment."""
    found = deployment(client, namespace, pool)
    return [] if found is None else list(found.spec.template.spec.containers[0].command)


def replicas(client: kubernetes.client.ApiClient, namespace: str, pool: str) -> int | None:
    found = deployment(client, namespace, pool)
    return None if found is None else int(found.spec.replicas or 0)


def pods(client: kubernetes.client.ApiClient, namespace: str, pool: str) -> list[Any]:
    """The pool's pods that are not being deleted."""
    found = kubernetes.client.CoreV1Api(client).list_namespaced_pod(namespace, label_selector=f"{LABEL}={pool}")
    return [pod for pod in found.items if not _deleting(pod)]


def _deleting(pod: kubernetes.client.V1Pod) -> bool:
    assert pod.metadata is not None
    return pod.metadata.deletion_timestamp is not None


def wait_for_replicas(
    client: kubernetes.client.ApiClient, namespace: str, pool: str, count: int, *, timeout: float = 30.0
) -> None:
    waiting.wait_for(
        lambda: replicas(client, namespace, pool) == count,
        timeout=timeout,
        what=f"the Deployment of pool {pool} to have {count} replicas (has {replicas(client, namespace, pool)})",
    )


def events(client: kubernetes.client.ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    """(reason, message) of the Events about WorkerPool ``name``, oldest first."""
    found = kubernetes.client.CoreV1Api(client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=WorkerPool,involvedObject.name={name}"
    )
    ordered = sorted(found.items, key=_resource_version)
    return [_reason_and_message(event) for event in ordered]


def _resource_version(event: kubernetes.client.CoreV1Event) -> int:
    assert event.metadata is not None and event.metadata.resource_version is not None
    return int(event.metadata.resource_version)


def _reason_and_message(event: kubernetes.client.CoreV1Event) -> tuple[str, str]:
    assert event.reason is not None and event.message is not None, f"an Event without a reason or message: {event}"
    return event.reason, event.message
