"""The Deployment the operator renders for a WorkerPool is accepted by the real API server, comes back without
differences (server defaults and canonical quantities are not hand edits), and its pods pass the restricted Pod
Security Standard's admission."""

from __future__ import annotations

import json
from typing import Any, cast

import kubernetes.client
import urllib3

from tests.cluster import manifests, models
from workpath_operator.kube import pools

CONNECTION = pools.WorkerConnection(url="ws://wp-workpath.workpath-system.svc:7740/v1/workers")
SPEC: dict[str, Any] = {
    "image": "registry.example/team/worker:1.0",
    "modules": ["examples.reports"],
    "routines": ["reports.*"],
    "serviceAccountName": "default",
    "resources": {"requests": {"cpu": "1000m", "memory": "0.5Gi"}, "limits": {"memory": "1024Mi"}},
    "env": [{"name": "WORKPATH_LOG_LEVEL", "value": "debug"}],
    "podLabels": {"team": "reports"},
    "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
}


def _rendered(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, Any]:
    """Create a WorkerPool and render its Deployment, as the operator would."""
    pool = models.json_object(
        kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
            manifests.GROUP,
            manifests.VERSION,
            namespace,
            manifests.WORKER_POOLS,
            manifests.worker_pool("reports", **SPEC),
        )
    )
    return pools.render_deployment(pool, spec=pools.spec_of(pool), connection=CONNECTION, replicas=0)


def test_the_live_deployment_has_no_differences_from_the_rendered_one(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    rendered = _rendered(k8s_api, k8s_namespace)
    apps = kubernetes.client.AppsV1Api(k8s_api)
    apps.create_namespaced_deployment(k8s_namespace, kubernetes.client.V1Deployment.model_validate(rendered))

    # Without _preload_content, the client answers with the HTTP response itself (its signature names the model).
    response = cast(
        urllib3.HTTPResponse,
        apps.read_namespaced_deployment(rendered["metadata"]["name"], k8s_namespace, _preload_content=False),
    )
    live = json.loads(response.data)

    assert pools.differences(rendered, live) == []
    assert live["metadata"]["annotations"][pools.TEMPLATE_HASH_ANNOTATION] == pools.template_hash(rendered)


def test_the_pods_are_admitted_under_the_restricted_pod_security_standard(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.patch_namespace(k8s_namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    template = _rendered(k8s_api, k8s_namespace)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", **template["metadata"]}}

    # Would be refused (403, "violates PodSecurity") if the template broke the restricted profile.
    core.create_namespaced_pod(
        k8s_namespace, kubernetes.client.V1Pod.model_validate(pod | {"spec": template["spec"]}), dry_run="All"
    )
