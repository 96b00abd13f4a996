"""Manifests for tests: the project's custom resources, and pods whose container is a Python snippet."""

from __future__ import annotations

from typing import Any

GROUP = "workpath.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
ROUTINES = "routines"
WORKER_POOLS = "workerpools"

SLEEPER = """\
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(0)))
print("started", flush=True)
time.sleep(3600)
"""
"""A process that runs until SIGTERM, then says so and exits 0."""


FULL_POOL_SPEC: dict[str, Any] = {
    "image": "registry.example:5000/team/worker:1.0",
    "modules": ["examples.reports", "team.jobs"],
    "routines": ["reports.*", "jobs.build"],
    "slots": 4,
    "minReplicas": 1,
    "maxReplicas": 8,
    "scaleDownDelaySeconds": 120,
    "drainTimeoutSeconds": 45,
    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi", "cpu": 2}},
    "env": [
        {"name": "WORKPATH_LOG_LEVEL", "value": "debug"},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    ],
    "serviceAccountName": "reports-worker",
    "podLabels": {"team": "reports"},
    "podAnnotations": {"prometheus.io/scrape": "true"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "workers", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}}
            ]
        }
    },
    "priorityClassName": "batch",
    "imagePullSecrets": [{"name": "registry"}],
}
"""A WorkerPool spec with every field set: what a careful user writes."""


def routine(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Routine", "metadata": {"name": name}, "spec": spec}


def worker_pool(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "WorkerPool", "metadata": {"name": name}, "spec": spec}


def python_container(code: str, *, name: str = "main", **fields: Any) -> dict[str, Any]:
    """A container that runs ``python -c code`` (the venv's python, on the process-kubelet)."""
    return {"name": name, "image": "process-kubelet/python", "command": ["python", "-c", code]} | fields


def python_pod(name: str, code: str, *, container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A pod of one :func:`python_container`; ``container`` adds fields to it, ``spec`` to the pod's spec."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [python_container(code, **(container or {}))], "restartPolicy": "Never"} | spec,
    }


def python_deployment(name: str, code: str, *, replicas: int) -> dict[str, Any]:
    """A Deployment of ``replicas`` pods running ``code``, with a 1-second termination grace."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [python_container(code)], "terminationGracePeriodSeconds": 1},
            },
        },
    }
