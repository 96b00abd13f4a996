"""``workpath logs NAME -n NAMESPACE`` prints the ctx.log lines of a Routine's run: it reads the Routine's run ID
with the kubeconfig's credentials, then asks the operator's runs API (as that same user, whom RBAC lets read
Routines there)."""

from __future__ import annotations

import subprocess
import sys

import kubernetes.client

from tests.cluster import controlplane
from tests.kube import operators, routines


def test_logs_of_a_routine_by_name(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    operator: operators.OperatorProcess,
    harness: operators.Harness,
) -> None:
    harness.start_worker("reporter", modules=["examples.reports"])
    routines.create(k8s_api, k8s_namespace, "october", routineID="reports.build", params={"month": "2026-10"})
    done = routines.wait_for_phase(k8s_api, k8s_namespace, "october", *routines.FINISHED, timeout=60)
    assert done["status"]["phase"] == "Succeeded"

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "workpath", "logs", *args, "--url", f"http://127.0.0.1:{operator.port}"]
        return subprocess.run(
            [*argv, f"--token={k8s_cluster.token}"], env=harness.env(), capture_output=True, text=True, timeout=60
        )

    by_name = logs("october", "-n", k8s_namespace)
    assert by_name.returncode == 0, by_name.stderr
    lines = by_name.stdout.splitlines()
    assert len(lines) == 2
    assert 'INFO     building report month="2026-10" parts=4' in lines[0]
    assert "INFO     report built rows=" in lines[1]
    assert logs(done["status"]["runID"], "-n", k8s_namespace).stdout == by_name.stdout

    missing = logs("no-such-routine", "-n", k8s_namespace)
    assert missing.returncode == 1
    assert f"no Routine no-such-routine in namespace {k8s_namespace}" in missing.stderr
