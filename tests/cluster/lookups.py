"""Questions about objects, phrased as predicates for :func:`tests.cluster.waiting.wait_for`."""

from __future__ import annotations

from typing import Any

import kubernetes.client


def exists(read: Any, *args: str) -> bool:
    """Whether ``read(*args)`` (a generated ``read_*`` method) finds the object: False on 404, errors propagate."""
    try:
        read(*args, _preload_content=False).drain_conn()  # Read in full: the connection goes back to the pool.
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def is_gone(read: Any, *args: str) -> bool:
    """Whether ``read(*args)`` answers 404 (the object is deleted, finalizers and all)."""
    return not exists(read, *args)


def pod_is_ready(pod: kubernetes.client.V1Pod) -> bool:
    """Running, with the Ready condition True (what a Deployment counts as available)."""
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
