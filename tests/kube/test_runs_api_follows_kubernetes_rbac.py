"""On the test control plane, the operator's runs API lets a caller do with runs what Kubernetes RBAC lets it do with
Routines in the namespace it names: a user allowed to create and get Routines submits a run, which becomes a Routine
(named in the answer, annotated with who asked) and succeeds, and reads it back, but may not cancel it (no delete);
a worker's token, the shared token and a request without a namespace are refused, each with the reason."""

from __future__ import annotations

import kubernetes.client

from tests.kube import identities, operators, routines

SUBMITTER = "submitter"
WORKER_ACCOUNT = "workpath-worker"


def test_runs_api_callers_get_what_rbac_on_routines_gives_them(
    harness: operators.Harness, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    namespace = k8s_namespace
    core = kubernetes.client.CoreV1Api(k8s_api)
    for account in (SUBMITTER, WORKER_ACCOUNT):
        core.create_namespaced_service_account(
            namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": account}})
        )
    identities.grant_routines(k8s_api, namespace, SUBMITTER, ["create", "get"])
    operator = harness.start_operator(args=("--allowed-service-account", f"{namespace}:{WORKER_ACCOUNT}"))
    harness.start_worker("w1")
    port = operator.port
    user = identities.token(core, namespace, SUBMITTER, audiences=())  # kubectl-like: for the API server
    worker = identities.token(core, namespace, WORKER_ACCOUNT)  # a worker's: for "workpath"
    spec = {"routineID": "k8s.sized", "params": {"size": 3}}
    runs_here = f"/v1/runs?namespace={namespace}"

    status, body = identities.call(port, "POST", runs_here, worker, body=spec)
    assert status == 403 and "may not create routines.workpath.dev" in str(body), body
    status, body = identities.call(port, "POST", runs_here, harness.token, body=spec)
    assert status == 403 and "Kubernetes token" in str(body), body
    status, body = identities.call(port, "POST", "/v1/runs", user, body=spec)
    assert status == 400 and "namespace" in str(body), body
    status, body = identities.call(port, "POST", "/v1/runs?namespace=default", user, body=spec)
    assert status == 403 and "not in namespace default" in str(body), body

    status, submitted = identities.call(port, "POST", runs_here, user, body=spec)
    assert status == 201, submitted
    assert isinstance(submitted, dict)
    name = submitted["routine"]["name"]
    assert submitted["routine"]["namespace"] == namespace and name.startswith("k8s.sized-")
    routine = routines.get(k8s_api, namespace, name)
    assert routine is not None and routine["metadata"]["uid"] == submitted["runID"]
    assert routine["metadata"]["annotations"]["workpath.dev/submitted-by"] == (
        f"system:serviceaccount:{namespace}:{SUBMITTER}"
    )

    run = f"/v1/runs/{submitted['runID']}"
    status, read = identities.call(port, "GET", f"{run}?namespace={namespace}&wait=30", user)
    assert status == 200 and isinstance(read, dict), read
    assert (read["phase"], read["result"], read["routine"]["name"]) == ("Succeeded", "xxx", name)
    status, _ = identities.call(port, "GET", f"{run}/logs?namespace={namespace}", user)
    assert status == 200
    status, body = identities.call(port, "DELETE", f"{run}?namespace={namespace}", user)
    assert status == 403 and "may not delete" in str(body), body
    status, _ = identities.call(port, "GET", "/v1/workers/status", user)
    assert status == 403  # the workers' status spans every namespace served: it takes list there
    status, _ = identities.call(port, "GET", "/v1/workers/status", harness.cluster.token)
    assert status == 200

    assert routines.wait_for_phase(k8s_api, namespace, name, "Succeeded", timeout=30)["status"]["result"] == "xxx"
