"""The chart's own pods run a Routine to Succeeded on the test control plane: the operator pod (its command, port and
readiness probe; the chart's namespaced, least-privilege RBAC as its only permissions) and two worker pods (their
projected tokens checked with TokenReview), admitted in a namespace that enforces the "restricted" Pod Security
Standard, are run by the process-kubelet as local processes; examples/routine.yaml is applied and succeeds. The
operator elects itself leader and labels its own pod, and the Service selects exactly that pod. The nearest
thing to tests/e2e/kind-e2e.sh that runs without Docker.

Two things stand in for what a real node gives a pod: the operator finds the API server through a kubeconfig with
its ServiceAccount's token (a local process cannot see /var/run/secrets/kubernetes.io/serviceaccount), and the
workers dial 127.0.0.1 (no cluster DNS resolves the Service's name here).
"""

from __future__ import annotations

import secrets
from typing import Any, cast

import kubernetes.client
import yaml

from tests.chart import pod_installs, rendering
from tests.cluster import controlplane, kubelet, manifests, processes, waiting
from workpath_operator.kube import electing

ROUTINE = rendering.REPO / "examples" / "routine.yaml"


def _values(namespace: str, port: int) -> dict[str, Any]:
    return {
        "rbac": {"clusterWide": False},
        "operator": pod_installs.operator_values(port) | {"allowedServiceAccounts": [f"{namespace}:workpath-worker"]},
        "workers": {
            "enabled": True,
            "replicas": 2,
            "modules": ["examples.reports"],
            "slots": 2,
            "extraEnv": [
                {"name": "PYTHONPATH", "value": str(rendering.REPO)},
                {"name": "WORKPATH_URL", "value": f"ws://127.0.0.1:{port}/v1/workers"},
            ],
        },
    }


def _selected_ready_pods(core: kubernetes.client.CoreV1Api, service: kubernetes.client.V1Service) -> set[str]:
    """The pods the Service's endpoints would list: those its selector selects that are ready. (The process-kubelet's
    pods all have the IP 127.0.0.1, which an EndpointSlice cannot hold: the real node's test reads the slices.)"""
    assert service.spec is not None and service.spec.selector is not None
    assert service.metadata is not None and service.metadata.namespace is not None
    selector = ",".join(f"{key}={value}" for key, value in service.spec.selector.items())
    return {_name(pod) for pod in pod_installs.ready_pods(core, service.metadata.namespace, selector)}


def _name(pod: kubernetes.client.V1Pod) -> str:
    assert pod.metadata is not None and pod.metadata.name is not None
    return pod.metadata.name


def test_chart_pods_run_the_example_routine_to_success(
    k8s_cluster: controlplane.Cluster,
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    process_kubelet: kubelet.ProcessKubelet,
    cluster_helm: rendering.Helm,
) -> None:
    namespace, release, port = k8s_namespace, f"wp-{secrets.token_hex(3)}", processes.free_port()
    core = kubernetes.client.CoreV1Api(k8s_api)
    routines = kubernetes.client.CustomObjectsApi(k8s_api)
    instance = f"app.kubernetes.io/instance={release}"

    # Pod Security admission refuses pods that the "restricted" standard does not allow.
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})

    with cluster_helm.installed(release, rendering.CHART, namespace=namespace, values=_values(namespace, port)):
        # The operator pod waits for its kubeconfig Secret, as a kubelet waits for a missing volume source.
        pod_installs.create_operator_kubeconfig(k8s_cluster, core, namespace)
        # Ready means the kubelet's httpGet of /readyz on the chart's port passed.
        (operator,) = waiting.wait_for(
            lambda: pod_installs.ready_pods(core, namespace, f"{instance},app.kubernetes.io/component=operator"),
            timeout=60,
            what="the operator pod to pass its readiness probe",
        )

        def two_ready_workers() -> list[kubernetes.client.V1Pod] | None:
            pods = pod_installs.ready_pods(core, namespace, f"{instance},app.kubernetes.io/component=worker")
            return pods if len(pods) == 2 else None

        workers = waiting.wait_for(
            two_ready_workers,
            timeout=60,
            what="two ready worker pods",
        )
        # The leader labelled its pod; the Service selects it by that label, and lists it alone.
        (service,) = core.list_namespaced_service(namespace, label_selector=instance).items
        waiting.wait_for(
            lambda: _selected_ready_pods(core, service) == {_name(operator)},
            timeout=30,
            what="the Service to select the leader's pod",
        )
        metadata = core.read_namespaced_pod(_name(operator), namespace).metadata
        assert metadata is not None and metadata.labels is not None
        assert metadata.labels[electing.LEADER_LABEL] == "true"

        k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(ROUTINE))
        name = yaml.safe_load(ROUTINE.read_text())["metadata"]["name"]

        def finished() -> dict[str, Any] | None:
            routine = cast(
                dict[str, Any],
                routines.get_namespaced_custom_object(
                    manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, name
                ),
            )
            phase = routine.get("status", {}).get("phase")
            return routine if phase in ("Succeeded", "Failed", "Cancelled") else None

        routine = waiting.wait_for(finished, timeout=90, what=f"Routine {name} to finish")

        status = routine["status"]
        assert status["phase"] == "Succeeded", status
        assert status["worker"] in {_name(pod) for pod in workers}
        assert status["result"]["parts"] == 4
        assert status["subroutines"]["succeeded"] == 4
        assert process_kubelet.process(namespace, _name(operator)).returncode is None
