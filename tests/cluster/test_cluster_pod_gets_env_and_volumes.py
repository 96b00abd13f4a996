"""A pod's process gets its env (values, fields, Secret and ConfigMap keys) and volumes as local files, with
container paths in args and env rewritten to them; its projected ServiceAccount token passes TokenReview."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client

from tests.cluster import kubelet, lookups, manifests, models, waiting

REPORT = """\
import json, os, pathlib, sys, time
names = ["POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME", "POD_IP", "PASSWORD", "COLOR", "GREETING",
         "TOKEN_PATH", "CFG_color", "KUBERNETES_SERVICE_HOST"]
print(json.dumps({
    "env": {name: os.environ.get(name) for name in names},
    "args": sys.argv[1:],
    "secret": pathlib.Path(sys.argv[1]).read_text(),
    "settings": pathlib.Path(sys.argv[2].removeprefix("--config=")).read_text(),
    "token": pathlib.Path(os.environ["TOKEN_PATH"]).read_text(),
}), flush=True)
time.sleep(3600)
"""


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _reporting_pod(name: str) -> kubernetes.client.V1Pod:
    container = {
        "args": [
            "/etc/workpath/secret/password",
            "--config=/etc/workpath/config/settings.yaml",
            "$(POD_NAME)-suffix",
            "$$(POD_NAME)",
        ],
        "env": [
            _field("POD_NAME", "metadata.name"),
            _field("POD_NAMESPACE", "metadata.namespace"),
            _field("POD_UID", "metadata.uid"),
            _field("NODE_NAME", "spec.nodeName"),
            _field("POD_IP", "status.podIP"),
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
            {"name": "GREETING", "value": "hello $(POD_NAME)"},
            {"name": "TOKEN_PATH", "value": "/var/run/secrets/workpath/token"},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "volumeMounts": [
            {"name": "secret", "mountPath": "/etc/workpath/secret"},
            {"name": "config", "mountPath": "/etc/workpath/config"},
            {"name": "token", "mountPath": "/var/run/secrets/workpath"},
        ],
    }
    volumes = [
        {"name": "secret", "secret": {"secretName": "creds"}},
        {
            "name": "config",
            "configMap": {"name": "settings", "items": [{"key": "settings.yaml", "path": "settings.yaml"}]},
        },
        {
            "name": "token",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"audience": "workpath", "expirationSeconds": 600, "path": "token"}}
                ]
            },
        },
    ]
    return kubernetes.client.V1Pod.model_validate(
        manifests.python_pod(name, REPORT, container=container, volumes=volumes)
    )


def _report(process_kubelet: kubelet.ProcessKubelet, namespace: str, name: str) -> dict[str, Any]:
    process_kubelet.wait_for_process(namespace, name)
    line = waiting.wait_for(
        lambda: next(
            (line for line in process_kubelet.logs(namespace, name).splitlines() if line.startswith("{")), None
        ),
        timeout=30,
        what=f"pod {name}'s report",
    )
    report: dict[str, Any] = json.loads(line)
    return report


def _create_references(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_secret(
        namespace,
        kubernetes.client.V1Secret.model_validate(
            {"metadata": {"name": "creds"}, "stringData": {"password": "hunter2"}}
        ),
    )
    core.create_namespaced_config_map(
        namespace,
        kubernetes.client.V1ConfigMap.model_validate(
            {"metadata": {"name": "settings"}, "data": {"color": "blue", "settings.yaml": "slots: 4\n"}}
        ),
    )


def test_pod_process_gets_env_and_volume_files(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, process_kubelet: kubelet.ProcessKubelet
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    _create_references(core, k8s_namespace)
    pod = core.create_namespaced_pod(k8s_namespace, _reporting_pod("reporter"))

    report = _report(process_kubelet, k8s_namespace, "reporter")

    assert report["env"] == {
        "POD_NAME": "reporter",
        "POD_NAMESPACE": k8s_namespace,
        "POD_UID": models.required(pod.metadata).uid,
        "NODE_NAME": process_kubelet.process(k8s_namespace, "reporter").node,
        "POD_IP": "127.0.0.1",
        "PASSWORD": "hunter2",
        "COLOR": "blue",
        "GREETING": "hello reporter",
        "TOKEN_PATH": report["env"]["TOKEN_PATH"],
        "CFG_color": "blue",
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
    }
    secret_path, config_arg, expanded, escaped = report["args"]
    assert secret_path.endswith("/volumes/secret/password") and not secret_path.startswith("/etc/workpath")
    assert config_arg.startswith("--config=") and config_arg.endswith("/volumes/config/settings.yaml")
    assert report["env"]["TOKEN_PATH"].endswith("/volumes/token/token")
    assert (expanded, escaped) == ("reporter-suffix", "$(POD_NAME)")
    assert (report["secret"], report["settings"]) == ("hunter2", "slots: 4\n")


def test_projected_token_is_bound_to_the_pod_and_passes_token_review(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, process_kubelet: kubelet.ProcessKubelet
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    _create_references(core, k8s_namespace)
    core.create_namespaced_pod(k8s_namespace, _reporting_pod("reporter"))

    token = _report(process_kubelet, k8s_namespace, "reporter")["token"]

    review = kubernetes.client.AuthenticationV1Api(k8s_api).create_token_review(
        kubernetes.client.V1TokenReview.model_validate({"spec": {"token": token, "audiences": ["workpath"]}})
    )
    status = models.required(review.status)
    user = models.required(status.user)
    assert status.authenticated is True
    assert user.username == f"system:serviceaccount:{k8s_namespace}:default"
    assert models.required(user.extra)["authentication.kubernetes.io/pod-name"] == ["reporter"]


def test_pod_waits_for_a_missing_secret_then_starts(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, process_kubelet: kubelet.ProcessKubelet
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_pod(k8s_namespace, _reporting_pod("patient"))

    def waiting_state() -> kubernetes.client.V1ContainerStateWaiting | None:
        statuses = models.required(core.read_namespaced_pod("patient", k8s_namespace).status).container_statuses or []
        return models.required(statuses[0].state).waiting if statuses else None

    state = waiting.wait_for(waiting_state, timeout=30, what="pod patient to report what it waits for")
    assert state.reason == "CreateContainerConfigError"
    assert f"Secret {k8s_namespace}/creds not found" in models.required(state.message)

    _create_references(core, k8s_namespace)

    assert _report(process_kubelet, k8s_namespace, "patient")["env"]["PASSWORD"] == "hunter2"
    waiting.wait_for(
        lambda: lookups.pod_is_ready(core.read_namespaced_pod("patient", k8s_namespace)),
        timeout=30,
        what="pod patient to be ready",
    )
