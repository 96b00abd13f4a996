"""The operator works with only the permissions of charts/workpath/templates/rbac.yaml: the template rendered on its
own (namespaced: a Role, plus a ClusterRole for TokenReviews), applied, and the operator run with a token of its
ServiceAccount. Its workers are pods of a Deployment run by the process-kubelet, proving who they are with projected
ServiceAccount tokens (audience "workpath") that the operator checks with TokenReview; only the allowed account gets
in. A fan-out Routine succeeds: list, watch, status patches, child Routines and Events all pass RBAC."""

from __future__ import annotations

import base64
import http.client
import pathlib
import secrets
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
import yaml

from tests.cluster import controlplane, kubelet, waiting
from tests.kube import operator_rbac, operators, routines

OPERATOR_ACCOUNT = operator_rbac.OPERATOR_ACCOUNT
WORKER_ACCOUNT = "workpath-worker"
AUDIENCE = "workpath"


@pytest.fixture
def rbac(k8s_cluster: controlplane.Cluster, k8s_namespace: str, tmp_path: pathlib.Path) -> Iterator[list[Any]]:
    """The rendered RBAC applied to the test namespace; its cluster-scoped objects deleted afterwards."""
    if k8s_cluster.binaries.helm is None:
        pytest.skip("helm is not built: run `bash tests/cluster/build.sh`")
    rendered = operator_rbac.render(
        k8s_cluster.binaries.helm, tmp_path, release=f"wp-{secrets.token_hex(3)}", namespace=k8s_namespace
    )
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(rendered)
    k8s_cluster.kubectl("-n", k8s_namespace, "apply", "-f", str(manifest))
    try:
        yield [document for document in yaml.safe_load_all(rendered) if document]
    finally:
        k8s_cluster.kubectl("-n", k8s_namespace, "delete", "-f", str(manifest), "--ignore-not-found", check=False)


def _worker_deployment(url: str) -> dict[str, Any]:
    labels = {"app": "workers"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "workers"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": WORKER_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "process-kubelet/python",
                            "command": ["workpath", "worker", "examples.reports", "--app-dir", str(operators.REPO)],
                            "env": [
                                {"name": "WORKPATH_URL", "value": url},
                                {"name": "WORKPATH_TOKEN_FILE", "value": "/var/run/secrets/workpath/token"},
                                {"name": "WORKPATH_SLOTS", "value": "4"},
                                {"name": "WORKPATH_BACKOFF_CAP", "value": "0.5"},
                                {
                                    "name": "WORKPATH_WORKER_ID",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                            "volumeMounts": [{"name": "token", "mountPath": "/var/run/secrets/workpath"}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "token",
                            "projected": {
                                "sources": [
                                    {
                                        "serviceAccountToken": {
                                            "audience": AUDIENCE,
                                            "expirationSeconds": 600,
                                            "path": "token",
                                        }
                                    }
                                ]
                            },
                        }
                    ],
                },
            },
        },
    }


def _status(port: int, token: str, *, path: str = "/v1/workers") -> int:
    """The HTTP status of a request with a bearer token: by default the workers' socket's upgrade (101: the token
    connects as a worker, 401: it does not)."""
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    key = {"Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode()}
    headers = {"Authorization": f"Bearer {token}"} | (upgrade | key if path == "/v1/workers" else {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_operator_serves_routines_with_only_the_chart_rbac(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    rbac: list[Any],
    tmp_path: pathlib.Path,
    harness: operators.Harness,
) -> None:
    namespace = k8s_namespace
    core = kubernetes.client.CoreV1Api(k8s_api)
    assert {(o["kind"], o["metadata"]["name"]) for o in rbac if o["kind"] == "ServiceAccount"} == {
        ("ServiceAccount", OPERATOR_ACCOUNT)
    }
    core.create_namespaced_service_account(
        namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": WORKER_ACCOUNT}})
    )
    core.create_namespaced_service_account(
        namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": "intruder"}})
    )
    kubeconfig = operator_rbac.operator_kubeconfig(k8s_cluster, core, namespace, tmp_path / "operator.kubeconfig")

    operator = harness.start_operator(
        kubeconfig=kubeconfig,
        shared_token=False,
        args=("--allowed-service-account", f"{namespace}:{WORKER_ACCOUNT}"),
    )
    apps = kubernetes.client.AppsV1Api(k8s_api)
    apps.create_namespaced_deployment(
        namespace, kubernetes.client.V1Deployment.model_validate(_worker_deployment(harness.url))
    )

    def tokens(account: str, audience: str) -> str:
        request = kubernetes.client.AuthenticationV1TokenRequest.model_validate(
            {"spec": {"audiences": [audience], "expirationSeconds": 600}}
        )
        status = core.create_namespaced_service_account_token(account, namespace, request).status
        assert status is not None
        return str(status.token)

    assert _status(harness.port, tokens(WORKER_ACCOUNT, AUDIENCE)) == 101
    assert _status(harness.port, tokens(WORKER_ACCOUNT, "someone-else")) == 401
    assert _status(harness.port, tokens("intruder", AUDIENCE)) == 401
    # A worker's token is no runs API credential: RBAC grants the workers' account nothing on Routines.
    assert _status(harness.port, tokens(WORKER_ACCOUNT, AUDIENCE), path="/v1/workers/status") == 403

    def two_running() -> list[kubernetes.client.V1Pod] | None:
        found = core.list_namespaced_pod(namespace, label_selector="app=workers").items
        running = len(found) == 2 and all(p.status is not None and p.status.phase == "Running" for p in found)
        return found if running else None

    pods = waiting.wait_for(two_running, timeout=60, what="two running worker pods")
    names = {_name(pod) for pod in pods}

    k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(operators.REPO / "examples" / "fanout.yaml"))
    routine = routines.wait_for_phase(k8s_api, namespace, "yearly-report", *routines.FINISHED, timeout=90)

    status = routine["status"]
    assert status["phase"] == "Succeeded", (status, [process_kubelet.logs(namespace, n)[-2000:] for n in names])
    assert status["worker"] in names
    assert status["subroutines"]["succeeded"] == 12
    routines.wait_for_events(k8s_api, namespace, "yearly-report", "Queued", "Started", "Succeeded")
    assert "Forbidden" not in operator.output()  # no request of the operator's (nor kopf's) was refused


def _name(pod: kubernetes.client.V1Pod) -> str:
    assert pod.metadata is not None and pod.metadata.name is not None
    return pod.metadata.name
