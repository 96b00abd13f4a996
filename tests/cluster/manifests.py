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
