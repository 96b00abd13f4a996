"""On the test control plane, ``workpath.Client`` against the operator's service (``/v1/clients`` with a namespace
and a Kubernetes token): a run it submits becomes a Routine, named in its handle, and succeeds; RBAC on Routines
decides what each caller may do (a reader may await and read, not submit; nobody here may cancel), and a client
that names no namespace is told to."""

from __future__ import annotations

import kubernetes.client
import pytest

import workpath
from tests.kube import identities, operators, routines

SUBMITTER = "submitter"
READER = "reader"


def test_a_client_run_becomes_a_routine_and_rbac_decides_who_may_do_what(
    harness: operators.Harness, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    namespace = k8s_namespace
    core = kubernetes.client.CoreV1Api(k8s_api)
    for account, verbs in ((SUBMITTER, ["create", "get"]), (READER, ["get"])):
        core.create_namespaced_service_account(
            namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": account}})
        )
        identities.grant_routines(k8s_api, namespace, account, verbs)
    operator = harness.start_operator()
    harness.start_worker("w1")
    url = f"http://127.0.0.1:{operator.port}"
    submitter = identities.token(core, namespace, SUBMITTER, audiences=())
    reader = identities.token(core, namespace, READER, audiences=())

    with workpath.SyncClient.for_service(url, token=submitter, namespace=namespace) as client:
        handle = client.submit("k8s.sized", size=3)
        routine_ref = handle.handle.routine
        assert routine_ref is not None and routine_ref.namespace == namespace
        assert routine_ref.name.startswith("k8s.sized-")
        assert handle.result(timeout=30) == "xxx"
        with pytest.raises(workpath.ClientAuthenticationError, match=r"may not delete routines\.workpath\.dev"):
            handle.cancel()
    routine = routines.wait_for_phase(k8s_api, namespace, routine_ref.name, "Succeeded", timeout=30)
    assert routine["metadata"]["uid"] == handle.run_id and routine["status"]["result"] == "xxx"
    assert routine["metadata"]["annotations"]["workpath.dev/submitted-by"] == (
        f"system:serviceaccount:{namespace}:{SUBMITTER}"
    )

    with workpath.SyncClient.for_service(url, token=reader, namespace=namespace) as client:
        with pytest.raises(workpath.ClientAuthenticationError, match=r"may not create routines\.workpath\.dev"):
            client.run("k8s.sized", size=1)
        assert client.get(handle.run_id).result(timeout=30) == "xxx"
        assert client.get(handle.run_id).status().phase == "Succeeded"

    with pytest.raises(workpath.ClientError, match="wants a namespace"):
        workpath.SyncClient.for_service(url, token=submitter)
