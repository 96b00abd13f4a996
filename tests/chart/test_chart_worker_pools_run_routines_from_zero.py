"""`helm install` with `workerPools` values runs Routines end to end: the chart's operator pod (its chart RBAC only,
under the "restricted" Pod Security Standard) creates the pool's Deployment at zero replicas, scales it up when the
example Routine is applied, the pool's worker pods (their projected tokens checked with TokenReview) run it to
Succeeded, and the pool goes back to zero."""

from __future__ import annotations

import secrets

import kubernetes.client
import yaml

from tests.chart import pod_installs, rendering
from tests.cluster import controlplane, kubelet, processes, waiting
from tests.kube import routines, worker_pools

ROUTINE = rendering.REPO / "examples" / "routine.yaml"
POOL = "reports"


def test_a_worker_pool_from_values_runs_the_example_routine_and_scales_back_to_zero(
    k8s_cluster: controlplane.Cluster,
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    process_kubelet: kubelet.ProcessKubelet,
    cluster_helm: rendering.Helm,
) -> None:
    namespace, release, port = k8s_namespace, f"wp-{secrets.token_hex(3)}", processes.free_port()
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    operator = pod_installs.operator_values(port) | {
        "allowedServiceAccounts": [f"{namespace}:workpath-worker"],
        # No cluster DNS for local processes: the pool's workers dial the operator on 127.0.0.1.
        "extraArgs": ["--worker-url", f"ws://127.0.0.1:{port}/v1/workers"],
    }
    pool = {
        "name": POOL,
        "modules": ["examples.reports"],
        "routines": ["reports.*"],
        "slots": 2,
        "maxReplicas": 2,
        "scaleDownDelaySeconds": 1,
        "env": [{"name": "PYTHONPATH", "value": str(rendering.REPO)}],
    }
    values = {"rbac": {"clusterWide": False}, "operator": operator, "workerPools": [pool]}

    with cluster_helm.installed(release, rendering.CHART, namespace=namespace, values=values) as notes:
        assert f"WorkerPools, scaled by the operator: {POOL}." in notes
        pod_installs.create_operator_kubeconfig(k8s_cluster, core, namespace)
        worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0, timeout=60)

        k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(ROUTINE))
        name = yaml.safe_load(ROUTINE.read_text())["metadata"]["name"]
        routine = routines.wait_for_phase(k8s_api, namespace, name, *routines.FINISHED, timeout=90)

        status = routine["status"]
        assert status["phase"] == "Succeeded", status
        assert status["worker"].startswith(f"{POOL}-workers-")
        assert status["result"]["parts"] == 4
        worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0, timeout=30)
        waiting.wait_for(
            lambda: worker_pools.pods(k8s_api, namespace, POOL) == [], timeout=30, what="the pool's pods to go"
        )
