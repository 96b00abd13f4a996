"""Kubeconfigs of ServiceAccounts, for the cluster client's tests: a user whose rights are only what RBAC grants."""

from __future__ import annotations

import pathlib

import kubernetes.client

from tests.cluster import controlplane, credentials
from tests.kube import identities


def of_account(
    cluster: controlplane.Cluster,
    k8s_api: kubernetes.client.ApiClient,
    namespace: str,
    account: str,
    *,
    verbs: list[str] | None,
    folder: pathlib.Path,
) -> pathlib.Path:
    """A kubeconfig whose user is a new ServiceAccount ``account`` (a token for the API server), allowed ``verbs``
    on Routines in ``namespace`` (nothing if None)."""
    core = kubernetes.client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(
        namespace, kubernetes.client.V1ServiceAccount.model_validate({"metadata": {"name": account}})
    )
    if verbs is not None:
        identities.grant_routines(k8s_api, namespace, account, verbs)
    token = identities.token(core, namespace, account, audiences=())
    return with_token(cluster, token, user=f"system:serviceaccount:{namespace}:{account}", folder=folder)


def with_token(cluster: controlplane.Cluster, token: str, *, user: str, folder: pathlib.Path) -> pathlib.Path:
    """A kubeconfig of the test control plane with ``token`` as its user's."""
    path = folder / f"{user.rsplit(':', 1)[-1]}.kubeconfig"
    identity = credentials.Identity(user=user, groups=(), token=token)
    credentials.write_kubeconfig(path, server=cluster.server, ca_file=cluster.ca_file, identity=identity)
    return path
