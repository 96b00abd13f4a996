"""Pods standing in for operator processes: objects the API server keeps, never scheduled (no kubelet runs them), whose
names and namespace an operator process is given as the downward API gives a real pod's (POD_NAME, POD_NAMESPACE),
so that, leading, it labels "its" pod as in a cluster. A stand-in Service (:class:`tests.kube.routing.ReadyRouter`)
then selects as the chart's does: the pod with the leader label whose process answers ``/readyz``.

>>> operator_pods.create(core, namespace, "operator-a")
>>> harness.start_operator(args=("--leader-elect",), env=operator_pods.env(namespace, "operator-a"))
"""

from __future__ import annotations

import kubernetes.client

from workpath_operator.kube import electing

#: No scheduler by this name runs: the pod stays Pending, unbound, and the process-kubelet leaves it alone.
UNSCHEDULED = "workpath-tests-nobody"


def create(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> None:
    body = kubernetes.client.V1Pod.model_validate(
        {
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "operator"}},
            "spec": {"schedulerName": UNSCHEDULED, "containers": [{"name": "operator", "image": "workpath/operator"}]},
        }
    )
    core.create_namespaced_pod(namespace, body)


def env(namespace: str, name: str) -> dict[str, str]:
    """What the downward API gives the chart's operator container."""
    return {"POD_NAME": name, "POD_NAMESPACE": namespace}


def labelled(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> bool:
    """Whether the pod carries the leader label."""
    pod = core.read_namespaced_pod(name, namespace)
    assert pod.metadata is not None
    return bool((pod.metadata.labels or {}).get(electing.LEADER_LABEL) == "true")
