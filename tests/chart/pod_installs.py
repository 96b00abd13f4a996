"""What a chart install on the process-kubelet needs that a real node would give: the operator pod reaches the API
server through a kubeconfig with its ServiceAccount's token (a local process cannot see the in-cluster token
mount), and pods dial 127.0.0.1 (no cluster DNS resolves the Service's name here)."""

from __future__ import annotations

import base64
from typing import Any

import kubernetes.client
import yaml

from tests.cluster import controlplane, lookups

OPERATOR_ACCOUNT = "workpath-operator"
KUBECONFIG_SECRET = "operator-kubeconfig"
KUBECONFIG_DIR = "/etc/workpath-test"


def operator_values(port: int) -> dict[str, Any]:
    """``operator`` values: one replica, the kubeconfig Secret mounted and used; the directive service on ``port``."""
    return {
        # One replica (it still elects itself): the process-kubelet runs pods on one host, where two could not
        # both listen on ``port``.
        "replicas": 1,
        "port": port,
        "extraEnv": [{"name": "KUBECONFIG", "value": f"{KUBECONFIG_DIR}/kubeconfig"}],
        "extraVolumes": [{"name": "kubeconfig", "secret": {"secretName": KUBECONFIG_SECRET}}],
        "extraVolumeMounts": [{"name": "kubeconfig", "mountPath": KUBECONFIG_DIR, "readOnly": True}],
    }


def create_operator_kubeconfig(
    cluster: controlplane.Cluster, core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    """The Secret the operator pod waits for: a kubeconfig with a token of its ServiceAccount, nothing more."""
    request = kubernetes.client.AuthenticationV1TokenRequest.model_validate({"spec": {"expirationSeconds": 3600}})
    status = core.create_namespaced_service_account_token(OPERATOR_ACCOUNT, namespace, request).status
    assert status is not None
    token = status.token
    authority = base64.b64encode(cluster.ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": cluster.server, "certificate-authority-data": authority}}],
        "users": [{"name": OPERATOR_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": OPERATOR_ACCOUNT}}],
        "current-context": "operator",
    }
    secret = {"metadata": {"name": KUBECONFIG_SECRET}, "stringData": {"kubeconfig": yaml.safe_dump(config)}}
    core.create_namespaced_secret(namespace, kubernetes.client.V1Secret.model_validate(secret))


def ready_pods(core: kubernetes.client.CoreV1Api, namespace: str, selector: str) -> list[kubernetes.client.V1Pod]:
    return [p for p in core.list_namespaced_pod(namespace, label_selector=selector).items if lookups.pod_is_ready(p)]
