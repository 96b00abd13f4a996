"""Least RBAC, proven both ways. The operator runs under its chart ServiceAccount with only the chart's rendered
rules (namespaced) through the scenarios it exists for: Routines run (with sub-routines, one deleted after its TTL,
and one submitted over the runs API by a user whom RBAC allows, which costs a TokenReview and a SubjectAccessReview)
on the pods of a WorkerPool that the operator scales from zero and back, whose Deployment is deleted by hand
and restored, and whose spec changes; it elects itself leader on the chart's Lease, labelling its own pod (one
standing in for it, named as the downward API would), and releases both when it stops. The API server's audit log
then says what the operator asked for: every request must be granted (a missing verb fails), and every granted
permission must have been used (an unused grant fails); its own pod was patched when it started (the label taken
off), when it led and when it stopped."""

from __future__ import annotations

import pathlib
import secrets

import kubernetes.client
import pytest

from tests.cluster import audit, controlplane, kubelet, waiting
from tests.kube import identities, operator_pods, operator_rbac, operators, routines, worker_pools

WORKER_ACCOUNT = "workpath-worker"
SUBMITTER = "submitter"
POOL = "reports"
OPERATOR_POD = "workpath-operator-0"

RARE_PATHS = {
    audit.Permission("workpath.dev", "routines", "get"): (
        "a child Routine whose create answers 409 (it was created before an operator restart) is read back"
    ),
}
"""Permissions the chart grants for paths a scenario cannot reach on purpose, each with the reason."""


def _submit_over_the_runs_api(
    k8s_api: kubernetes.client.ApiClient, core: kubernetes.client.CoreV1Api, namespace: str, *, port: int
) -> str:
    """A user allowed to create Routines submits a run over the runs API; the name of its Routine."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s_api)
    core.create_namespaced_service_account(
        namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": SUBMITTER}})
    )
    rules = [{"apiGroups": ["workpath.dev"], "resources": ["routines"], "verbs": ["create"]}]
    rbac.create_namespaced_role(
        namespace, kubernetes.client.V1Role.model_validate({"metadata": {"name": SUBMITTER}, "rules": rules})
    )
    subject = {"kind": "ServiceAccount", "name": SUBMITTER, "namespace": namespace}
    role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SUBMITTER}
    rbac.create_namespaced_role_binding(
        namespace,
        kubernetes.client.V1RoleBinding.model_validate(
            {"metadata": {"name": SUBMITTER}, "roleRef": role, "subjects": [subject]}
        ),
    )
    user = identities.token(core, namespace, SUBMITTER, audiences=())
    spec = {"routineID": "k8s.sized", "params": {"size": 2}}
    status, body = identities.call(port, "POST", f"/v1/runs?namespace={namespace}", user, body=spec)
    assert status == 201 and isinstance(body, dict), body
    return str(body["routine"]["name"])


def _lease_name(rendered: str) -> str:
    """The one Lease the chart's RBAC lets the operator read and write."""
    (name,) = {name for rule in operator_rbac.rules(rendered) for name in rule.get("resourceNames", [])}
    return str(name)


def _own_pod_patches(log: pathlib.Path, *, user: str, namespace: str) -> int:
    """How often ``user`` patched the operator's own pod (the leader label), allowed."""
    patches = 0
    for event in audit.events(log):
        ref = event.get("objectRef") or {}
        if (
            event.get("user", {}).get("username") == user
            and (event["verb"], ref.get("resource"), ref.get("namespace"), ref.get("name"))
            == ("patch", "pods", namespace, OPERATOR_POD)
            and event.get("responseStatus", {}).get("code") == 200
        ):
            patches += 1
    return patches


def test_the_chart_grants_exactly_what_the_operator_uses(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    tmp_path: pathlib.Path,
) -> None:
    if k8s_cluster.binaries.helm is None:
        pytest.skip("helm is not built: run `bash tests/cluster/build.sh`")
    namespace = k8s_namespace
    core = kubernetes.client.CoreV1Api(k8s_api)
    rendered = operator_rbac.render(
        k8s_cluster.binaries.helm, tmp_path, release=f"wp-{secrets.token_hex(3)}", namespace=namespace
    )
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(rendered)
    k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(manifest))
    core.create_namespaced_service_account(
        namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": WORKER_ACCOUNT}})
    )
    operator_pods.create(core, namespace, OPERATOR_POD)
    kubeconfig = operator_rbac.operator_kubeconfig(k8s_cluster, core, namespace, tmp_path / "operator.kubeconfig")
    user = f"system:serviceaccount:{namespace}:{operator_rbac.OPERATOR_ACCOUNT}"
    try:
        with operators.Harness(k8s_cluster, namespace, tmp_path) as harness:
            operator = harness.start_operator(
                kubeconfig=kubeconfig,
                shared_token=False,
                args=(
                    "--allowed-service-account",
                    f"{namespace}:{WORKER_ACCOUNT}",
                    "--worker-url",
                    harness.url,
                    # As the chart runs it: electing its leader on the Lease its RBAC names.
                    "--leader-elect",
                    "--lease-name",
                    _lease_name(rendered),
                ),
                env=operator_pods.env(namespace, OPERATOR_POD),  # as the chart's downward API gives them
            )
            # Ready means healthy; leading (and so the label) follows once the Lease is taken.
            waiting.wait_for(
                lambda: operator_pods.labelled(core, namespace, OPERATOR_POD),
                timeout=15,
                what="the operator to lead and label its own pod",
            )
            spec = worker_pools.pool_spec(
                modules=["examples.reports", "tests.kube.workload"],
                routines=["reports.*", "k8s.*"],
                serviceAccountName=WORKER_ACCOUNT,
                maxReplicas=2,
                scaleDownDelaySeconds=1,
            )
            worker_pools.create(k8s_api, namespace, POOL, **spec)
            k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(operators.REPO / "examples" / "fanout.yaml"))
            routines.create(
                k8s_api, namespace, "brief", routineID="k8s.sized", params={"size": 1}, ttlSecondsAfterFinished=0
            )
            submitted = _submit_over_the_runs_api(k8s_api, core, namespace, port=operator.port)
            done = routines.wait_for_phase(k8s_api, namespace, "yearly-report", *routines.FINISHED, timeout=90)
            assert done["status"]["phase"] == "Succeeded", done["status"]
            routines.wait_for_phase(k8s_api, namespace, submitted, "Succeeded", timeout=30)
            routines.wait_until_gone(k8s_api, namespace, "brief")
            worker_pools.wait_for_replicas(k8s_api, namespace, POOL, 0, timeout=30)

            kubernetes.client.AppsV1Api(k8s_api).delete_namespaced_deployment(f"{POOL}-workers", namespace)
            waiting.wait_for(
                lambda: worker_pools.deployment(k8s_api, namespace, POOL) is not None,
                timeout=10,
                what="the deleted Deployment to be created again",
            )
            worker_pools.patch(k8s_api, namespace, POOL, {"slots": 3})
            waiting.wait_for(
                lambda: (
                    "3" in worker_pools.deployment(k8s_api, namespace, POOL).spec.template.spec.containers[0].command
                ),
                timeout=10,
                what="the spec change to reach the Deployment",
            )
            assert "Forbidden" not in operator.output()
    finally:
        k8s_cluster.kubectl("-n", namespace, "delete", "-f", str(manifest), "--ignore-not-found", check=False)

    granted = audit.granted(operator_rbac.rules(rendered))

    def operator_used() -> set[audit.Permission] | None:
        found = audit.used(k8s_cluster.audit_log, user=user, namespace=namespace)
        return found if found and audit.Permission("apps", "deployments", "patch") in found else None

    used = waiting.wait_for(
        operator_used,
        timeout=10,
        what="the audit log to hold the operator's requests",
    )
    denied = audit.denied(k8s_cluster.audit_log, user=user)
    assert not denied, f"the operator was refused: {denied}"
    missing = sorted(used - granted)
    assert not missing, f"the operator used permissions the chart does not grant: {[str(p) for p in missing]}"
    unused = sorted(granted - used - set(RARE_PATHS))
    assert not unused, f"the chart grants permissions nothing used: {[str(p) for p in unused]}"
    # Its own pod: unlabelled as it started, labelled as it led, unlabelled as it stopped.
    waiting.wait_for(
        lambda: _own_pod_patches(k8s_cluster.audit_log, user=user, namespace=namespace) == 3,
        timeout=10,
        what="three patches of the operator's own pod in the audit log",
    )
    assert not operator_pods.labelled(core, namespace, OPERATOR_POD)
