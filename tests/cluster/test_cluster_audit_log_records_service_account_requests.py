"""The API server's audit log records what a ServiceAccount asked for, allowed or refused: the ground truth the
chart's RBAC is compared with."""

from __future__ import annotations

import kubernetes.client
import pytest

from tests.cluster import audit, controlplane, models, waiting


def test_requests_of_a_service_account_are_in_the_audit_log(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(
        k8s_namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": "auditee"}})
    )
    request = core.create_namespaced_service_account_token(
        "auditee",
        k8s_namespace,
        kubernetes.client.AuthenticationV1TokenRequest.model_validate({"spec": {"expirationSeconds": 600}}),
    )
    token = models.required(models.required(request.status).token)
    configuration = k8s_cluster.configuration()
    configuration.api_key = {"BearerToken": token}
    user = f"system:serviceaccount:{k8s_namespace}:auditee"
    with kubernetes.client.ApiClient(configuration) as client:
        with pytest.raises(kubernetes.client.ApiException) as raised:
            kubernetes.client.CoreV1Api(client).list_namespaced_pod(k8s_namespace)
        assert raised.value.status == 403
        with pytest.raises(kubernetes.client.ApiException):
            kubernetes.client.AppsV1Api(client).patch_namespaced_deployment_scale(
                "absent", k8s_namespace, {"spec": {"replicas": 1}}
            )

    expected = {audit.Permission("", "pods", "list"), audit.Permission("apps", "deployments/scale", "patch")}
    waiting.wait_for(
        lambda: expected <= audit.used(k8s_cluster.audit_log, user=user, namespace=k8s_namespace),
        timeout=10,
        what="the audit log to record the ServiceAccount's requests",
    )
    assert any(line.startswith("list pods/") for line in audit.denied(k8s_cluster.audit_log, user=user))
    # Only ServiceAccounts are audited: the admin's requests (this test's own) are not.
    assert not audit.used(k8s_cluster.audit_log, user=k8s_cluster.admin.user)


def test_rbac_rules_expand_to_permissions_and_refuse_wildcards() -> None:
    rules = [{"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get", "patch"]}]
    assert audit.granted(rules) == {
        audit.Permission("apps", "deployments", "get"),
        audit.Permission("apps", "deployments", "patch"),
        audit.Permission("apps", "deployments/scale", "get"),
        audit.Permission("apps", "deployments/scale", "patch"),
    }
    with pytest.raises(ValueError, match="wildcard"):
        audit.granted([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}])
