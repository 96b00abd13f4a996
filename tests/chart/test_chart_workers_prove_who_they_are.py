"""A worker pod of the chart, run by the process-kubelet, gets what `workpath worker` needs to authenticate: a
projected token that TokenReview accepts for the audience "workpath" (and no other) as the workers' ServiceAccount,
bound to the pod; its pod name as worker ID; the Service's URL. `helm uninstall` drains it: SIGTERM, exit 0."""

from __future__ import annotations

import pathlib
import secrets

import kubernetes.client

from tests.chart import rendering
from tests.cluster import kubelet, lookups, podrunning, waiting

WORKER_ACCOUNT = "workpath-worker"


def _process_environment(pid: int) -> dict[str, str]:
    """The environment a local process was started with (what the kubelet gave the container)."""
    raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode().partition("=") for entry in raw.split(b"\0") if entry)
    return {name: value for name, _, value in pairs}


def test_worker_pod_token_passes_token_review_for_the_operator_audience_only(
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    process_kubelet: kubelet.ProcessKubelet,
    cluster_helm: rendering.Helm,
) -> None:
    namespace, release = k8s_namespace, f"wp-{secrets.token_hex(3)}"
    values = {
        "operator": {"replicas": 0},
        "workers": {
            "enabled": True,
            "replicas": 1,
            "modules": ["examples.reports"],
            "slots": 3,
            "pool": "reports",
            # The image would have examples/ in its working directory; a local process finds it on PYTHONPATH.
            "extraEnv": [{"name": "PYTHONPATH", "value": str(rendering.REPO)}],
        },
    }
    core = kubernetes.client.CoreV1Api(k8s_api)
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=worker"
    authentication = kubernetes.client.AuthenticationV1Api(k8s_api)

    with cluster_helm.installed(release, rendering.CHART, namespace=namespace, values=values):
        pod = waiting.wait_for(
            lambda: next(
                (
                    p
                    for p in core.list_namespaced_pod(namespace, label_selector=selector).items
                    if lookups.pod_is_ready(p)
                ),
                None,
            ),
            timeout=60,
            what=f"a ready worker pod of release {release}",
        )
        assert pod.metadata is not None and pod.metadata.name is not None
        name = pod.metadata.name
        process = process_kubelet.wait_for_process(namespace, name)
        assert process.pid is not None
        env = _process_environment(process.pid)
        token = pathlib.Path(env["WORKPATH_TOKEN_FILE"]).read_text()

        assert env["WORKPATH_WORKER_ID"] == name
        assert env["WORKPATH_URL"] == f"ws://{release}-workpath.{namespace}.svc:{rendering.DIRECTIVE_PORT}/v1/workers"
        assert (env["WORKPATH_SLOTS"], env["WORKPATH_POOL"]) == ("3", "reports")
        review = authentication.create_token_review(
            kubernetes.client.V1TokenReview.model_validate(
                {"spec": {"token": token, "audiences": [rendering.AUDIENCE]}}
            )
        ).status
        assert review is not None
        assert review.authenticated is True
        assert review.user is not None
        assert review.user.username == f"system:serviceaccount:{namespace}:{WORKER_ACCOUNT}"
        assert review.user.extra is not None
        assert review.user.extra["authentication.kubernetes.io/pod-name"] == [name]
        assert review.audiences == [rendering.AUDIENCE]
        # Not an API credential: the API server's own audience refuses it.
        refused = authentication.create_token_review(
            kubernetes.client.V1TokenReview.model_validate({"spec": {"token": token}})
        ).status
        assert refused is not None
        assert not refused.authenticated

        # The worker itself runs: it loaded the routines and dials the Service (absent here: no operator).
        waiting.wait_for(
            lambda: "cannot connect to ws://" in process_kubelet.logs(namespace, name),
            timeout=30,
            what=f"worker {name} to try the directive service",
        )
        assert process_kubelet.process(namespace, name).returncode is None, process_kubelet.logs(namespace, name)

        cluster_helm.uninstall(release, namespace=namespace)

        def stopped() -> podrunning.PodProcess | None:
            snapshot = process_kubelet.process(namespace, name)
            return snapshot if snapshot.returncode is not None else None

        ended = waiting.wait_for(
            stopped,
            timeout=60,
            what=f"worker {name} to stop after helm uninstall",
        )

    assert ended.signals == ("SIGTERM",), process_kubelet.logs(namespace, name)
    assert ended.returncode == 0, process_kubelet.logs(namespace, name)
    assert "draining" in process_kubelet.logs(namespace, name)
