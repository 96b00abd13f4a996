"""ServiceAccount tokens from the TokenRequest API pass TokenReview, and RBAC governs what they may do."""

from __future__ import annotations

import json

import kubernetes.client
import pytest

from tests.cluster import controlplane, models, waiting

AUDIENCE = "workpath"


def _token(core: kubernetes.client.CoreV1Api, namespace: str, account: str, audience: str) -> str:
    request = core.create_namespaced_service_account_token(
        account,
        namespace,
        kubernetes.client.AuthenticationV1TokenRequest.model_validate(
            {"spec": {"audiences": [audience], "expirationSeconds": 600}}
        ),
    )
    return models.required(models.required(request.status).token)


@pytest.fixture
def worker_token(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> str:
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(
        k8s_namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": "worker"}})
    )
    return _token(core, k8s_namespace, "worker", AUDIENCE)


def test_requested_token_passes_token_review(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, worker_token: str
) -> None:
    review = kubernetes.client.AuthenticationV1Api(k8s_api).create_token_review(
        kubernetes.client.V1TokenReview.model_validate({"spec": {"token": worker_token, "audiences": [AUDIENCE]}})
    )
    status = models.required(review.status)
    assert status.authenticated is True
    assert models.required(status.user).username == f"system:serviceaccount:{k8s_namespace}:worker"
    assert AUDIENCE in models.required(status.audiences)


def test_token_for_another_audience_fails_token_review(k8s_api: kubernetes.client.ApiClient, worker_token: str) -> None:
    review = kubernetes.client.AuthenticationV1Api(k8s_api).create_token_review(
        kubernetes.client.V1TokenReview.model_validate({"spec": {"token": worker_token, "audiences": ["someone-else"]}})
    )
    assert not models.required(review.status).authenticated


def test_rbac_forbids_until_a_role_allows(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, worker_token: str
) -> None:
    # An API token (default audience) for the same account, used as the client's credential.
    token = _token(kubernetes.client.CoreV1Api(k8s_api), k8s_namespace, "worker", controlplane.SERVICE_ACCOUNT_ISSUER)
    configuration = k8s_cluster.configuration()
    configuration.api_key = {"BearerToken": token}
    with kubernetes.client.ApiClient(configuration) as worker_api:
        worker = kubernetes.client.CoreV1Api(worker_api)
        with pytest.raises(kubernetes.client.ApiException) as raised:
            worker.list_namespaced_pod(k8s_namespace)
        assert raised.value.status == 403
        assert json.loads(models.required(raised.value.body))["message"] == (
            f'pods is forbidden: User "system:serviceaccount:{k8s_namespace}:worker" cannot list resource "pods" '
            f'in API group "" in the namespace "{k8s_namespace}"'
        )

        rbac = kubernetes.client.RbacAuthorizationV1Api(k8s_api)
        rbac.create_namespaced_role(
            k8s_namespace,
            kubernetes.client.V1Role.model_validate(
                {
                    "metadata": {"name": "pod-reader"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
                }
            ),
        )
        rbac.create_namespaced_role_binding(
            k8s_namespace,
            kubernetes.client.V1RoleBinding.model_validate(
                {
                    "metadata": {"name": "worker-reads-pods"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": k8s_namespace}],
                }
            ),
        )

        def allowed() -> bool:  # The authorizer's cache follows RBAC objects within moments.
            try:
                worker.list_namespaced_pod(k8s_namespace)
            except kubernetes.client.ApiException as e:
                if e.status == 403:
                    return False
                raise
            return True

        waiting.wait_for(allowed, timeout=30, what="the RoleBinding to allow listing pods")
        with pytest.raises(kubernetes.client.ApiException) as raised:
            worker.list_namespaced_config_map(k8s_namespace)
        assert raised.value.status == 403
