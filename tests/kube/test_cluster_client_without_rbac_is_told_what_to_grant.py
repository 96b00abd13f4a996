"""On the test control plane, the cluster target says what to fix when Kubernetes refuses it: a user whom RBAC
grants nothing on Routines is told which verbs to ask for when it submits; one allowed to create but not to
watch gets its runs created and is told so when it awaits them; a token the API server does not know fails at
open; log lines without the operator's URL are refused, naming where they are."""

from __future__ import annotations

import pathlib

import kubernetes.client
import pytest

import workpath
from tests.cluster import controlplane
from tests.kube import kubeconfigs, routines


async def test_a_user_without_rbac_on_routines_is_told_what_to_grant(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, tmp_path: pathlib.Path
) -> None:
    nobody = kubeconfigs.of_account(k8s_cluster, k8s_api, k8s_namespace, "nobody", verbs=None, folder=tmp_path)
    async with workpath.Client.for_cluster(k8s_namespace, kubeconfig=nobody) as client:
        with pytest.raises(workpath.ClientAuthenticationError) as refused:
            await client.submit("k8s.sized", size=1)
    message = str(refused.value)
    assert f"RBAC does not let you create routines.workpath.dev in namespace {k8s_namespace}" in message
    assert f'User "system:serviceaccount:{k8s_namespace}:nobody" cannot create resource "routines"' in message
    assert "granting create, get, list, watch and delete on routines" in message
    assert routines.listed(k8s_api, k8s_namespace) == []


async def test_a_user_who_may_create_but_not_watch_is_told_when_it_awaits(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, tmp_path: pathlib.Path
) -> None:
    creator = kubeconfigs.of_account(k8s_cluster, k8s_api, k8s_namespace, "creator", verbs=["create"], folder=tmp_path)
    async with workpath.Client.for_cluster(k8s_namespace, kubeconfig=creator) as client:
        handle = await client.submit("k8s.sized", size=1)
        with pytest.raises(workpath.ClientAuthenticationError, match="does not let you list and watch routines"):
            await handle.result(timeout=10)
        with pytest.raises(workpath.ClientError, match="give service_url="):
            [line async for line in handle.logs()]
    assert [r["metadata"]["uid"] for r in routines.listed(k8s_api, k8s_namespace)] == [handle.run_id]


async def test_a_token_the_api_server_does_not_know_fails_at_open(
    k8s_cluster: controlplane.Cluster, tmp_path: pathlib.Path
) -> None:
    stranger = kubeconfigs.with_token(k8s_cluster, "not-a-token", user="stranger", folder=tmp_path)
    with pytest.raises(workpath.ClientAuthenticationError, match=r"refused the credentials of kubeconfig .*stranger"):
        await workpath.Client.for_cluster("default", kubeconfig=stranger).open()
