"""examples/workerpool.yaml, applied as a user would (with the one env var the process-kubelet needs to import the
examples from this checkout), serves examples/fanout.yaml: the pool scales up from zero, the fan-out succeeds on its
pods, and the pool's Events say each scaling decision with its numbers."""

from __future__ import annotations

import pathlib
import re

import kubernetes.client
import yaml

from tests.cluster import controlplane, kubelet
from tests.kube import operators, routines, worker_pools

EXAMPLES = operators.REPO / "examples"
DECISION = re.compile(r"^queued \d+ \+ running \d+, 4 slots → \d replicas \(was \d")


def test_the_example_pool_runs_the_example_fanout(
    k8s_cluster: controlplane.Cluster,
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    process_kubelet: kubelet.ProcessKubelet,
    tmp_path: pathlib.Path,
    pool_operator: operators.OperatorProcess,
) -> None:
    namespace = k8s_namespace
    pool = yaml.safe_load((EXAMPLES / "workerpool.yaml").read_text())
    pool["spec"]["env"] = [{"name": "PYTHONPATH", "value": str(operators.REPO)}]
    manifest = tmp_path / "workerpool.yaml"
    manifest.write_text(yaml.safe_dump(pool))
    name = pool["metadata"]["name"]
    k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(manifest))
    worker_pools.wait_for_replicas(k8s_api, namespace, name, 0)
    k8s_cluster.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "fanout.yaml"))
    done = routines.wait_for_phase(k8s_api, namespace, "yearly-report", *routines.FINISHED, timeout=90)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["subroutines"]["succeeded"] == 12
    assert done["status"]["worker"].startswith(f"{name}-workers-")
    decisions = [message for reason, message in worker_pools.events(k8s_api, namespace, name)]
    assert decisions and all(DECISION.match(message) for message in decisions), decisions
    shown = k8s_cluster.kubectl("-n", namespace, "get", "wp", name, "-o", "wide").stdout
    assert shown.split("\n")[0].split() == [
        "NAME",
        "IMAGE",
        "DESIRED",
        "READY",
        "QUEUED",
        "AGE",
        "RUNNING",
        "MIN",
        "MAX",
        "CONNECTED",
    ]
