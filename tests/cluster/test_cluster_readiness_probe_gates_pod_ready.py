"""A pod with an httpGet readiness probe runs, but is Ready only once its process answers the probe."""

from __future__ import annotations

import pathlib

import kubernetes.client

from tests.cluster import kubelet, lookups, manifests, models, processes, waiting

SERVER = """\
import http.server, os, pathlib, time
gate = pathlib.Path(os.environ["GATE"])
while not gate.exists():
    time.sleep(0.05)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def test_pod_is_ready_only_when_the_probe_answers(
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    process_kubelet: kubelet.ProcessKubelet,
    tmp_path: pathlib.Path,
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    gate, port = tmp_path / "gate", processes.free_port()
    container = {
        "env": [{"name": "GATE", "value": str(gate)}, {"name": "PORT", "value": str(port)}],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    }
    core.create_namespaced_pod(
        k8s_namespace,
        kubernetes.client.V1Pod.model_validate(manifests.python_pod("probed", SERVER, container=container)),
    )

    def running_pod() -> kubernetes.client.V1Pod | None:
        pod = core.read_namespaced_pod("probed", k8s_namespace)
        return pod if models.required(pod.status).phase == "Running" else None

    running = waiting.wait_for(running_pod, timeout=30, what="pod probed to run")
    assert not lookups.pod_is_ready(running)

    gate.touch()

    waiting.wait_for(
        lambda: lookups.pod_is_ready(core.read_namespaced_pod("probed", k8s_namespace)),
        timeout=30,
        what="pod probed to be ready",
    )
