"""`helm install` of the chart on the real control plane: the API server accepts every object (pod templates,
WorkerPools against their CRD, RBAC), the operator's ServiceAccount gets the permissions it needs and no more than
rbac.clusterWide says, the notes tell where workers connect, and `helm uninstall` removes everything but the CRDs.

The operator runs with 0 replicas here: its image is irrelevant, and the process-kubelet (if another test started it)
would otherwise try to run `workpath operator` as a local process without in-cluster credentials.
"""

from __future__ import annotations

import json
import pathlib
import secrets
from typing import Any, cast

import kubernetes.client
import pytest

from tests.chart import rendering
from tests.cluster import controlplane, manifests, waiting

OPERATOR_ACCOUNT = "workpath-operator"
WORKER_ACCOUNT = "workpath-worker"
POOL = {
    "name": "reports",
    "modules": ["examples.reports"],
    "routines": ["reports.*"],
    "minReplicas": 0,
    "maxReplicas": 2,
}


@pytest.fixture
def release() -> str:
    """A release name of its own: cluster-scoped objects (ClusterRoles) of two tests must not collide."""
    return f"wp-{secrets.token_hex(3)}"


def _account_user(namespace: str, account: str) -> dict[str, Any]:
    return {
        "user": f"system:serviceaccount:{namespace}:{account}",
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
    }


def _allowed(
    api: kubernetes.client.ApiClient,
    who: dict[str, Any],
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
) -> bool:
    """Whether RBAC lets ``who`` do ``verb`` on ``resource`` (``routines/status`` for a subresource)."""
    resource, _, subresource = resource.partition("/")
    attributes = {"verb": verb, "resource": resource, "group": group, "subresource": subresource}
    if namespace is not None:
        attributes["namespace"] = namespace
    review = kubernetes.client.AuthorizationV1Api(api).create_subject_access_review(
        kubernetes.client.V1SubjectAccessReview.model_validate({"spec": {**who, "resourceAttributes": attributes}})
    )
    assert review.status is not None
    return bool(review.status.allowed)


def _objects_in_cluster(cluster: controlplane.Cluster, manifest: pathlib.Path) -> set[tuple[str, str]]:
    found = cluster.kubectl("get", "-f", str(manifest), "--ignore-not-found", "-o", "json").stdout
    if not found.strip():
        return set()
    listed = json.loads(found)
    items = listed["items"] if listed.get("kind") == "List" else [listed]
    return {(item["kind"], item["metadata"]["name"]) for item in items}


def _established(api: kubernetes.client.ApiClient, name: str) -> bool:
    crd = kubernetes.client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    assert crd.status is not None
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


@pytest.mark.parametrize("cluster_wide", [True, False], ids=["cluster-wide", "namespaced"])
def test_chart_installs_its_objects_and_uninstall_removes_them(
    k8s_cluster: controlplane.Cluster,
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    cluster_helm: rendering.Helm,
    release: str,
    tmp_path: pathlib.Path,
    cluster_wide: bool,
) -> None:
    namespace = k8s_namespace
    manifest_path = tmp_path / "manifest.yaml"
    values = {"rbac": {"clusterWide": cluster_wide}, "operator": {"replicas": 0}, "workerPools": [POOL]}

    with cluster_helm.installed(release, rendering.CHART, namespace=namespace, values=values) as output:
        manifest_path.write_text(cluster_helm.manifest(release, namespace=namespace))
        rendered = {(o["kind"], o["metadata"]["name"]) for o in rendering.load_documents(manifest_path.read_text())}

        # Everything helm rendered was accepted and exists, RBAC included.
        assert {"Deployment", "Service", "ServiceAccount", "WorkerPool"} <= {kind for kind, _ in rendered}
        assert _objects_in_cluster(k8s_cluster, manifest_path) == rendered

        notes = output[output.index("NOTES:") :]
        assert f"ws://{release}-workpath.{namespace}.svc:{rendering.DIRECTIVE_PORT}/v1/workers" in notes
        assert f"kubectl -n {namespace} get routines" in notes

        core, apps = kubernetes.client.CoreV1Api(k8s_api), kubernetes.client.AppsV1Api(k8s_api)
        deployment = apps.read_namespaced_deployment(f"{release}-workpath", namespace)
        assert deployment.spec.replicas == 0
        assert deployment.spec.template.spec is not None
        assert deployment.spec.template.spec.service_account_name == OPERATOR_ACCOUNT
        service = core.read_namespaced_service(f"{release}-workpath", namespace)
        assert service.spec is not None and service.spec.ports is not None
        assert [(p.port, p.target_port) for p in service.spec.ports] == [(rendering.DIRECTIVE_PORT, "directive")]
        assert service.spec.cluster_ip
        for account in (OPERATOR_ACCOUNT, WORKER_ACCOUNT):
            metadata = core.read_namespaced_service_account(account, namespace).metadata
            assert metadata is not None and metadata.name == account

        # The API server applied the CRD's defaults to the WorkerPool: it was checked against the schema.
        pool = cast(
            dict[str, Any],
            kubernetes.client.CustomObjectsApi(k8s_api).get_namespaced_custom_object(
                manifests.GROUP, manifests.VERSION, namespace, manifests.WORKER_POOLS, "reports"
            ),
        )
        assert pool["spec"]["slots"] == 10
        assert pool["spec"]["serviceAccountName"] == WORKER_ACCOUNT
        for crd in ("routines.workpath.dev", "workerpools.workpath.dev"):
            assert _established(k8s_api, crd)

        operator = _account_user(namespace, OPERATOR_ACCOUNT)
        waiting.wait_for(
            lambda: _allowed(k8s_api, operator, "create", "tokenreviews", group="authentication.k8s.io"),
            timeout=30,
            what="the operator's RBAC to allow TokenReviews (worker authentication)",
        )
        needed = [
            ("watch", "routines", "workpath.dev"),
            ("list", "routines", "workpath.dev"),
            ("patch", "routines/status", "workpath.dev"),
            ("watch", "workerpools", "workpath.dev"),
            ("create", "deployments", "apps"),
        ]
        for verb, resource, group in needed:
            assert _allowed(k8s_api, operator, verb, resource, group=group, namespace=namespace), (verb, resource)
        elsewhere = _allowed(k8s_api, operator, "list", "routines", group="workpath.dev", namespace="default")
        assert elsewhere is cluster_wide

        worker = _account_user(namespace, WORKER_ACCOUNT)
        assert not _allowed(k8s_api, worker, "create", "tokenreviews", group="authentication.k8s.io")
        assert not _allowed(k8s_api, worker, "list", "routines", group="workpath.dev", namespace=namespace)
        assert not _allowed(k8s_api, worker, "get", "pods", namespace=namespace)

        cluster_helm.uninstall(release, namespace=namespace)

    waiting.wait_for(
        lambda: not _objects_in_cluster(k8s_cluster, manifest_path),
        timeout=60,
        what=f"the objects of release {release} to be deleted",
    )
    # CRDs are not the release's: uninstalling keeps every user's Routines.
    for crd in ("routines.workpath.dev", "workerpools.workpath.dev"):
        assert _established(k8s_api, crd)
