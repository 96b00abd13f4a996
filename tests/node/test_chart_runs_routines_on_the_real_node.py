"""The chart as a user installs it, on a real kubelet: the images built here from images/*.Dockerfile run as
non-root pods with read-only root filesystems under the "restricted" Pod Security Standard; the workers find the
operator by its Service's DNS name and prove who they are with their projected tokens; examples/routine.yaml and
the fan-out example succeed with every status field and their child Routines; `kubectl logs` shows the run's log."""

from __future__ import annotations

import urllib.parse
from typing import Any

import kubernetes.client
import yaml

from tests.chart import rendering
from tests.cluster import manifests, models, node, waiting
from tests.node import deploying

EXAMPLES = rendering.REPO / "examples"


def _children(
    routines: kubernetes.client.CustomObjectsApi, namespace: str, run_id: str, *, count: int
) -> list[dict[str, Any]]:
    """The child Routines of the run, once ``count`` of them have Succeeded (their status is written asynchronously)."""

    def succeeded() -> list[dict[str, Any]] | None:
        listed = models.json_object(
            routines.list_namespaced_custom_object(
                manifests.GROUP,
                manifests.VERSION,
                namespace,
                manifests.ROUTINES,
                label_selector=f"workpath.dev/root-run={run_id}",
            )
        )
        done = [item for item in listed["items"] if item.get("status", {}).get("phase") == "Succeeded"]
        children = [item for item in done if item["metadata"]["name"] != run_id and item["status"].get("parentRunID")]
        return children if len(children) >= count else None

    return waiting.wait_for(succeeded, timeout=30, what=f"{count} succeeded child Routines of run {run_id}")


def _apply_example(cluster: node.NodeCluster, namespace: str, name: str) -> str:
    path = EXAMPLES / name
    cluster.control_plane.kubectl("-n", namespace, "apply", "-f", str(path))
    return str(yaml.safe_load(path.read_text())["metadata"]["name"])


def test_chart_runs_the_examples_on_real_pods(
    node_cluster: node.NodeCluster,
    node_release: deploying.Release,
    core: kubernetes.client.CoreV1Api,
    routines: kubernetes.client.CustomObjectsApi,
) -> None:
    namespace = node_release.namespace
    print(f"helm install -> operator and 2 workers Ready: {node_release.install_seconds:.1f} s")
    workers = {models.name(pod): pod for pod in deploying.ready_pods(core, node_release, "worker", count=2)}

    name = _apply_example(node_cluster, namespace, "routine.yaml")
    status = deploying.wait_finished(routines, namespace, name)["status"]

    assert status["phase"] == "Succeeded", status
    assert status["worker"] in workers
    assert status["attempt"] == 1
    assert status["runID"] and "parentRunID" not in status
    assert status["createdAt"] <= status["startedAt"] <= status["completedAt"]
    assert 0 <= status["runTimeSeconds"] <= status["roundTripSeconds"]
    assert status["result"]["month"] == "2026-10"
    assert status["result"]["parts"] == 4 and status["result"]["rows"] > 400
    assert status["subroutines"]["succeeded"] == status["subroutines"]["total"] == 4
    assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in status["conditions"]), status
    assert status["observedGeneration"] == 1
    children = _children(routines, namespace, status["runID"], count=4)
    assert len(children) == 4
    assert {child["status"]["parentRunID"] for child in children} == {status["runID"]}

    fanout = _apply_example(node_cluster, namespace, "fanout.yaml")
    fanout_status = deploying.wait_finished(routines, namespace, fanout)["status"]
    assert fanout_status["phase"] == "Succeeded", fanout_status
    assert fanout_status["subroutines"]["succeeded"] == 12
    assert len(_children(routines, namespace, fanout_status["runID"], count=12)) == 12

    # `kubectl logs` (apiserver -> kubelet -> containerd's log file) has the run's own log lines.
    logs = node_cluster.control_plane.kubectl("-n", namespace, "logs", status["worker"]).stdout
    assert "building report" in logs and "report built" in logs, logs


def test_workers_reach_the_operator_by_its_service_name_with_a_projected_token(
    node_cluster: node.NodeCluster, node_release: deploying.Release, core: kubernetes.client.CoreV1Api
) -> None:
    namespace = node_release.namespace
    (service,) = core.list_namespaced_service(
        namespace, label_selector=f"app.kubernetes.io/instance={node_release.name}"
    ).items
    operator_logs = node_cluster.control_plane.kubectl(
        "-n", namespace, "logs", "-l", node_release.selector("operator"), "--tail=-1"
    ).stdout
    for pod in deploying.ready_pods(core, node_release, "worker", count=2):
        spec = models.required(pod.spec)
        (container,) = spec.containers
        env = {variable.name: variable.value for variable in models.required(container.env)}
        url = urllib.parse.urlsplit(env["WORKPATH_URL"])
        # A DNS name (CoreDNS on the node), not an address: resolved inside the pod, through the ClusterIP.
        assert url.hostname == f"{models.name(service)}.{namespace}.svc"
        projected = [volume.projected for volume in models.required(spec.volumes) if volume.projected is not None]
        audiences = [
            source.service_account_token.audience
            for volume in projected
            for source in models.required(volume.sources)
            if source.service_account_token is not None
        ]
        assert rendering.AUDIENCE in audiences
        assert models.required(spec.security_context).run_as_non_root
        assert models.required(container.security_context).read_only_root_filesystem
        # Ready, and known to the operator: connected and authenticated (a TokenReview of the projected token).
        assert models.name(pod) in operator_logs, operator_logs[-3000:]
