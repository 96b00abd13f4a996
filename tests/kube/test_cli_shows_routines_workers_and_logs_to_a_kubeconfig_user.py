"""On the test control plane, the kubectl-like commands with ``-n`` work for a kubeconfig user whom RBAC lets use
Routines (and list Events) in one namespace, and nothing else: ``get`` lists Routines straight from the API server
(``-o json``, ``-l``, a table with its columns; ``-A`` is refused, naming the API server's reason), ``describe``
shows children counts, conditions and Events, ``run -n`` submits through the operator with the kubeconfig's token
and waits, ``cancel`` deletes a running Routine (the run is cancelled) and leaves a finished one, ``workers`` and
``logs`` ask the operator with that same token; an unknown name is said to be unknown."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from typing import Any

import kubernetes.client

from tests.cluster import controlplane, credentials
from tests.kube import identities, operators, routines
from workpath_operator.commands import rendering

USER = "cli-user"


def _kubeconfig_user(
    cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, namespace: str, path: pathlib.Path
) -> pathlib.Path:
    """A kubeconfig for a ServiceAccount allowed Routines and Events' list in ``namespace`` only."""
    core = kubernetes.client.CoreV1Api(k8s_api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(k8s_api)
    core.create_namespaced_service_account(
        namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": USER}})
    )
    rules = [
        {"apiGroups": ["workpath.dev"], "resources": ["routines"], "verbs": ["get", "list", "create", "delete"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    rbac.create_namespaced_role(
        namespace, kubernetes.client.V1Role.model_validate({"metadata": {"name": USER}, "rules": rules})
    )
    rbac.create_namespaced_role_binding(
        namespace,
        kubernetes.client.V1RoleBinding.model_validate(
            {
                "metadata": {"name": USER},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": USER},
                "subjects": [{"kind": "ServiceAccount", "name": USER, "namespace": namespace}],
            }
        ),
    )
    token = identities.token(core, namespace, USER, audiences=())  # kubectl-like: for the API server
    identity = credentials.Identity(user=USER, groups=(), token=token)
    credentials.write_kubeconfig(path, server=cluster.server, ca_file=cluster.ca_file, identity=identity)
    return path


def test_a_kubeconfig_user_gets_describes_runs_cancels_and_reads_workers_and_logs(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    operator: operators.OperatorProcess,
    harness: operators.Harness,
    markers: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    namespace = k8s_namespace
    kubeconfig = _kubeconfig_user(k8s_cluster, k8s_api, namespace, tmp_path / "cli-user.kubeconfig")
    url = f"http://127.0.0.1:{operator.port}"

    def workpath(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workpath", *args],
            env=harness.env(kubeconfig),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def parsed(*args: str) -> Any:
        done = workpath(*args, "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    harness.start_worker("w1", modules=["examples.reports", operators.WORKLOAD])
    routines.create(k8s_api, namespace, "october", routineID="reports.build", params={"month": "2026-10", "parts": 2})
    done = routines.wait_for_phase(k8s_api, namespace, "october", *routines.FINISHED, timeout=60)
    assert done["status"]["phase"] == "Succeeded"
    run_id = done["status"]["runID"]

    listed = parsed("get", "-n", namespace)
    assert listed["kind"] == "List"
    by_name = {item["metadata"]["name"]: item for item in listed["items"]}
    assert by_name["october"]["status"]["phase"] == "Succeeded"
    children = parsed("get", "-n", namespace, "-l", f"workpath.dev/root-run={run_id}")["items"]
    assert len(children) == 2 and {c["spec"]["routineID"] for c in children} == {"reports.part"}
    assert parsed("get", run_id, "-n", namespace)["metadata"]["name"] == "october"

    table = workpath("get", "-n", namespace)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == list(rendering.ROUTINE_COLUMNS)
    assert any(re.match(r"october\s+reports\.build\s+Succeeded\s+w1\s", row) for row in rows)

    everywhere = workpath("get", "-A")
    assert everywhere.returncode == 1
    assert "the API server forbids you to list Routines in any namespace (403)" in everywhere.stderr

    routines.wait_for_events(k8s_api, namespace, "october", "Started", "Succeeded")
    described = workpath("describe", "october", "-n", namespace)
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert re.search(r"Subroutines:\s+2 total, 2 succeeded, 0 failed, 0 running", text)
    assert re.search(r"Conditions:\n\s+TYPE\s+STATUS\s+REASON", text)
    assert re.search(r"Succeeded\s+True\s+Succeeded", text)
    assert re.search(r"Events:\n\s+TYPE\s+REASON\s+AGE\s+FROM\s+MESSAGE", text)
    assert re.search(r"Normal\s+Started\s+\d+s\s+\S+\s+attempt 1 started on w1", text)

    submitted = workpath("run", "k8s.sized", "-p", "size=3", "-n", namespace, "--url", url, "--json")
    assert submitted.returncode == 0, submitted.stderr
    assert f"(Routine {namespace}/k8s.sized-" in submitted.stderr
    assert json.loads(submitted.stdout)["result"] == "xxx"

    routines.create(k8s_api, namespace, "napping", routineID="k8s.nap", params={"markers": str(markers), "seconds": 60})
    routines.wait_for_phase(k8s_api, namespace, "napping", "Running", timeout=30)
    cancelled = workpath("cancel", "napping", "-n", namespace)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "routine.workpath.dev/napping deleted" in cancelled.stdout
    routines.wait_until_gone(k8s_api, namespace, "napping")
    finished = workpath("cancel", "october", "-n", namespace)
    assert finished.returncode == 0 and "already Succeeded: nothing to cancel" in finished.stdout
    assert routines.get(k8s_api, namespace, "october") is not None

    (worker,) = parsed("workers", "-n", namespace, "--url", url)["items"]
    assert (worker["workerID"], worker["slots"], worker["connected"]) == ("w1", 4, True)

    logs = workpath("logs", "october", "-n", namespace, "--url", url)
    assert logs.returncode == 0, logs.stderr
    assert 'building report month="2026-10" parts=2' in logs.stdout

    unknown = workpath("describe", "no-such-routine", "-n", namespace)
    assert unknown.returncode == 1
    assert f"no Routine no-such-routine in namespace {namespace}" in unknown.stderr
