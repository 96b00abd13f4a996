"""The chart's RBAC on the test control plane: rbac.yaml rendered alone, applied, and a kubeconfig for the
operator's ServiceAccount, so that the operator runs with exactly those permissions."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from typing import Any

import kubernetes.client
import yaml

from tests.cluster import controlplane, credentials
from tests.kube import operators

RBAC = operators.REPO / "charts" / "workpath" / "templates" / "rbac.yaml"
OPERATOR_ACCOUNT = "workpath-operator"


def render(helm: pathlib.Path, workdir: pathlib.Path, *, release: str, namespace: str) -> str:
    """``helm template`` of rbac.yaml alone (namespaced), in a chart of its own: it needs nothing else."""
    chart = workdir / "chart" / "workpath"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: workpath\nversion: 0.1.0\nappVersion: '0.1.0'\n")
    shutil.copy(RBAC, chart / "templates" / "rbac.yaml")
    home = workdir / "helm-home"
    env = {"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"), "PATH": "/usr/bin:/bin"}
    argv = [str(helm), "template", release, str(chart), "--namespace", namespace, "--set", "rbac.clusterWide=false"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(rendered) if document]


def rules(rendered: str) -> list[dict[str, Any]]:
    """Every rule of the rendered Roles and ClusterRoles."""
    found: list[dict[str, Any]] = []
    for document in documents(rendered):
        if document["kind"] in {"Role", "ClusterRole"}:
            found.extend(document.get("rules") or [])
    return found


def operator_kubeconfig(
    cluster: controlplane.Cluster, core: kubernetes.client.CoreV1Api, namespace: str, path: pathlib.Path
) -> pathlib.Path:
    """A kubeconfig with a token of the operator's ServiceAccount."""
    request = kubernetes.client.AuthenticationV1TokenRequest.model_validate({"spec": {"expirationSeconds": 3600}})
    status = core.create_namespaced_service_account_token(OPERATOR_ACCOUNT, namespace, request).status
    assert status is not None and status.token is not None
    token = status.token
    identity = credentials.Identity(user=OPERATOR_ACCOUNT, groups=(), token=token)
    credentials.write_kubeconfig(path, server=cluster.server, ca_file=cluster.ca_file, identity=identity)
    return path
