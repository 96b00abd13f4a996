"""Installing the chart on the real node with the images built here, and watching what its pods do.

The workers get one module besides the examples, ``nodetests.slow`` (from a ConfigMap mounted into /app): a
routine that sleeps, logging when it starts and finishes, so that tests can interrupt runs and count executions.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import secrets
import time
from typing import Any

import kubernetes.client

from tests.chart import rendering
from tests.cluster import lookups, manifests, models, node, waiting
from workpath_operator.kube import electing

SLOW_MODULE = """
import asyncio

import workpath


@workpath.routine("nodetests.sleep")
async def sleep(ctx: workpath.Context, key: str, seconds: float) -> dict[str, object]:
    ctx.log.info("sleep started", key=key)
    await asyncio.sleep(seconds)
    ctx.log.info("sleep finished", key=key)
    return {"key": key, "slept": seconds}
"""
SLOW_CONFIGMAP = "nodetests"
FINISHED = ("Succeeded", "Failed", "Cancelled")


@dataclasses.dataclass(frozen=True)
class Release:
    """An installed release of the chart on the real node."""

    name: str
    namespace: str
    install_seconds: float

    def selector(self, component: str) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"


def values(cluster: node.NodeCluster, namespace: str, *, replicas: int = 2) -> dict[str, Any]:
    operator, worker = cluster.images["operator"], cluster.images["worker"]
    return {
        "rbac": {"clusterWide": False},
        "operator": {
            "image": {"repository": operator.repository, "tag": operator.tag, "pullPolicy": "Never"},
            "allowedServiceAccounts": [f"{namespace}:workpath-worker"],
        },
        "workers": {
            "enabled": True,
            "replicas": replicas,
            "modules": ["examples.reports", "nodetests.slow"],
            "slots": 2,
            "image": {"repository": worker.repository, "tag": worker.tag, "pullPolicy": "Never"},
            # A deleted worker hands its runs back after a second instead of finishing them.
            "extraEnv": [{"name": "WORKPATH_DRAIN_TIMEOUT", "value": "1"}],
            "extraVolumes": [{"name": "nodetests", "configMap": {"name": SLOW_CONFIGMAP}}],
            "extraVolumeMounts": [{"name": "nodetests", "mountPath": "/app/nodetests", "readOnly": True}],
        },
    }


def install(
    helm: rendering.Helm, cluster: node.NodeCluster, core: kubernetes.client.CoreV1Api, namespace: str
) -> Release:
    """Enforce the restricted Pod Security Standard, install the chart, wait until every pod is Ready."""
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    core.create_namespaced_config_map(
        namespace,
        kubernetes.client.V1ConfigMap.model_validate(
            {"metadata": {"name": SLOW_CONFIGMAP}, "data": {"slow.py": SLOW_MODULE}}
        ),
    )
    started = time.monotonic()
    release = f"wp-{secrets.token_hex(3)}"
    helm.install(release, rendering.CHART, namespace=namespace, values=values(cluster, namespace))
    installed = Release(name=release, namespace=namespace, install_seconds=time.monotonic() - started)
    ready_pods(core, installed, "operator", count=2)
    leader_pod(core, installed)
    ready_pods(core, installed, "worker", count=2)
    return dataclasses.replace(installed, install_seconds=time.monotonic() - started)


def ready_pods(
    core: kubernetes.client.CoreV1Api, release: Release, component: str, *, count: int, timeout: float = 90.0
) -> list[kubernetes.client.V1Pod]:
    """Wait until exactly ``count`` pods of the component are Ready and not being deleted (the operator's standby
    replica too: the Service finds the leader by its label, see :func:`leader_pod`)."""

    def ready() -> list[kubernetes.client.V1Pod] | None:
        pods = core.list_namespaced_pod(release.namespace, label_selector=release.selector(component)).items
        good = [
            pod
            for pod in pods
            if models.required(pod.metadata).deletion_timestamp is None and lookups.pod_is_ready(pod)
        ]
        return good if len(good) == count else None

    return waiting.wait_for(ready, timeout=timeout, what=f"{count} ready {component} pod(s) in {release.namespace}")


def leader_pod(
    core: kubernetes.client.CoreV1Api, release: Release, *, timeout: float = 90.0
) -> kubernetes.client.V1Pod:
    """Wait until exactly one operator pod is Ready, not being deleted, and labelled as the leader's: the one the
    Service selects."""
    selector = f"{release.selector('operator')},{electing.LEADER_LABEL}=true"

    def leading() -> kubernetes.client.V1Pod | None:
        pods = core.list_namespaced_pod(release.namespace, label_selector=selector).items
        good = [
            pod
            for pod in pods
            if models.required(pod.metadata).deletion_timestamp is None and lookups.pod_is_ready(pod)
        ]
        return good[0] if len(good) == 1 else None

    return waiting.wait_for(leading, timeout=timeout, what=f"the operator's leader pod in {release.namespace}")


def create_sleep(routines: kubernetes.client.CustomObjectsApi, namespace: str, key: str, seconds: float) -> None:
    """A Routine of ``nodetests.sleep`` named ``key``."""
    body = {
        "apiVersion": f"{manifests.GROUP}/{manifests.VERSION}",
        "kind": "Routine",
        "metadata": {"name": key},
        "spec": {"routineID": "nodetests.sleep", "params": {"key": key, "seconds": seconds}},
    }
    routines.create_namespaced_custom_object(manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, body)


def routine(routines: kubernetes.client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return models.json_object(
        routines.get_namespaced_custom_object(manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, name)
    )


def wait_finished(
    routines: kubernetes.client.CustomObjectsApi, namespace: str, name: str, *, timeout: float = 120.0
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        found = routine(routines, namespace, name)
        return found if found.get("status", {}).get("phase") in FINISHED else None

    return waiting.wait_for(finished, timeout=timeout, what=f"Routine {namespace}/{name} to finish")


def pod_logs(core: kubernetes.client.CoreV1Api, namespace: str, pod: str) -> str:
    """``kubectl logs`` of the pod's container, through the apiserver and the kubelet."""
    return str(core.read_namespaced_pod_log(pod, namespace))


def count_lines(logs: list[str], message: str) -> collections.Counter[str]:
    """How many of the workers' JSON log lines of runs say ``message``, by the run's ``key`` field."""
    counts: collections.Counter[str] = collections.Counter()
    for text in logs:
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("message") == message:
                    counts[str(record.get("fields", {}).get("key"))] += 1
    return counts


def worker_logs(core: kubernetes.client.CoreV1Api, release: Release) -> list[str]:
    """The logs of every worker pod that still exists."""
    pods = core.list_namespaced_pod(release.namespace, label_selector=release.selector("worker")).items
    return [
        pod_logs(core, release.namespace, models.name(pod))
        for pod in pods
        if models.required(pod.status).phase == "Running"
    ]
