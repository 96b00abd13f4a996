"""Deleting a pod stops its process: SIGTERM, SIGKILL after the grace period, then the pod is removed."""

from __future__ import annotations

from typing import Any

import kubernetes.client

from tests.cluster import kubelet, lookups, manifests, waiting

STUBBORN = """\
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("started", flush=True)
time.sleep(3600)
"""


def _start(
    core: kubernetes.client.CoreV1Api, process_kubelet: kubelet.ProcessKubelet, namespace: str, pod: dict[str, Any]
) -> str:
    """Create the pod and wait until its process runs and has said "started" (its signal handler is set)."""
    name: str = pod["metadata"]["name"]
    core.create_namespaced_pod(namespace, kubernetes.client.V1Pod.model_validate(pod))
    process_kubelet.wait_for_process(namespace, name)
    waiting.wait_for(
        lambda: "started" in process_kubelet.logs(namespace, name), timeout=30, what=f"pod {name} to say started"
    )
    return name


def test_deleted_pod_process_gets_sigterm_and_the_pod_is_removed(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, process_kubelet: kubelet.ProcessKubelet
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    name = _start(core, process_kubelet, k8s_namespace, manifests.python_pod("graceful", manifests.SLEEPER))

    core.delete_namespaced_pod(name, k8s_namespace)

    waiting.wait_for(
        lambda: lookups.is_gone(core.read_namespaced_pod, name, k8s_namespace), timeout=30, what=f"pod {name} gone"
    )
    process = process_kubelet.process(k8s_namespace, name)
    assert process.signals == ("SIGTERM",)
    assert process.returncode == 0
    assert process_kubelet.logs(k8s_namespace, name).splitlines() == ["started", "got SIGTERM"]


def test_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, process_kubelet: kubelet.ProcessKubelet
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    pod = manifests.python_pod("stubborn", STUBBORN, terminationGracePeriodSeconds=1)
    name = _start(core, process_kubelet, k8s_namespace, pod)

    core.delete_namespaced_pod(name, k8s_namespace)

    waiting.wait_for(
        lambda: lookups.is_gone(core.read_namespaced_pod, name, k8s_namespace), timeout=30, what=f"pod {name} gone"
    )
    process = process_kubelet.process(k8s_namespace, name)
    assert process.signals == ("SIGTERM", "SIGKILL")
    assert process.returncode == -9
