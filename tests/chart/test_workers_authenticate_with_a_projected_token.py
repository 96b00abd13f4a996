"""The optional worker Deployment: off by default; when on, its pods reach the Service and prove who they are with a
short-lived projected ServiceAccount token for the audience "workpath", from an account with no RBAC."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering


def _workers(rendered: rendering.Rendered) -> dict[str, Any]:
    deployment = rendered.deployment_of("worker")
    assert deployment is not None, "no worker Deployment rendered"
    return deployment


def test_no_workers_by_default(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render()

    assert rendered.deployment_of("worker") is None
    assert rendered.find("ServiceAccount", "workpath-worker") is None


def test_workers_replicas_modules_slots_and_pool_come_from_values(render: Callable[..., rendering.Rendered]) -> None:
    deployment = _workers(render(rendering.WORKER_VALUES))
    env = rendering.env_of(deployment)

    assert deployment["spec"]["replicas"] == 2
    assert rendering.container(deployment)["command"] == ["workpath", "worker", "examples.reports"]
    assert env["WORKPATH_SLOTS"]["value"] == "4"
    assert env["WORKPATH_POOL"]["value"] == "reports"


def test_worker_id_is_the_pod_name(render: Callable[..., rendering.Rendered]) -> None:
    env = rendering.env_of(_workers(render(rendering.WORKER_VALUES)))

    assert env["WORKPATH_WORKER_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@pytest.mark.parametrize("values", [{}, {"fullnameOverride": "jobs", "service": {"port": 7000}}])
def test_worker_url_is_the_directive_service(render: Callable[..., rendering.Rendered], values: dict[str, Any]) -> None:
    rendered = render(rendering.WORKER_VALUES | values)
    (service,) = rendered.of_kind("Service")
    url = rendering.env_of(_workers(rendered))["WORKPATH_URL"]["value"]

    port = service["spec"]["ports"][0]["port"]
    assert url == f"ws://{service['metadata']['name']}.{rendering.NAMESPACE}.svc:{port}/v1/workers"


def test_worker_token_is_projected_for_the_operator_and_short_lived(
    render: Callable[..., rendering.Rendered],
) -> None:
    deployment = _workers(render(rendering.WORKER_VALUES))
    pod = rendering.pod_spec(deployment)
    container = rendering.container(deployment)
    token_file = rendering.env_of(deployment)["WORKPATH_TOKEN_FILE"]["value"]

    projected = [
        (volume["name"], source["serviceAccountToken"])
        for volume in pod["volumes"]
        for source in volume.get("projected", {}).get("sources", [])
        if "serviceAccountToken" in source
    ]
    assert len(projected) == 1
    volume_name, token = projected[0]
    assert token["audience"] == rendering.AUDIENCE
    assert 600 <= token["expirationSeconds"] <= 3600
    (mount,) = [mount for mount in container["volumeMounts"] if mount["name"] == volume_name]
    assert mount.get("readOnly") is True
    assert token_file == posixpath.join(mount["mountPath"], token["path"])


def test_worker_token_lifetime_comes_from_values(render: Callable[..., rendering.Rendered]) -> None:
    values = rendering.WORKER_VALUES | {
        "workers": rendering.WORKER_VALUES["workers"] | {"token": {"expirationSeconds": 900}}
    }
    pod = rendering.pod_spec(_workers(render(values)))

    (token,) = [
        source["serviceAccountToken"]
        for volume in pod["volumes"]
        for source in volume.get("projected", {}).get("sources", [])
    ]
    assert token["expirationSeconds"] == 900


def test_workers_have_their_own_account_without_rbac_or_api_token(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render(rendering.WORKER_VALUES)
    pod = rendering.pod_spec(_workers(rendered))
    operator_pod = rendering.pod_spec(rendered.deployment_of("operator") or {})

    account = pod["serviceAccountName"]
    assert account == "workpath-worker"
    assert account != operator_pod["serviceAccountName"]
    assert rendered.get("ServiceAccount", account)["metadata"]["namespace"] == rendering.NAMESPACE
    assert pod["automountServiceAccountToken"] is False
    assert list(rendering.bindings_naming(rendered, account, rendering.NAMESPACE)) == []


def test_workers_get_time_to_drain(render: Callable[..., rendering.Rendered]) -> None:
    pod = rendering.pod_spec(_workers(render(rendering.WORKER_VALUES)))

    # More than the worker's default drain timeout (30 s) plus its confirm timeout (5 s).
    assert pod["terminationGracePeriodSeconds"] > 35


def test_extra_env_is_added_after_the_chart_settings(render: Callable[..., rendering.Rendered]) -> None:
    workers = rendering.WORKER_VALUES["workers"] | {"extraEnv": [{"name": "WORKPATH_LOG_LEVEL", "value": "debug"}]}
    names = [entry["name"] for entry in rendering.container(_workers(render({"workers": workers})))["env"]]

    assert names[-1] == "WORKPATH_LOG_LEVEL"
    assert {"WORKPATH_URL", "WORKPATH_TOKEN_FILE", "WORKPATH_WORKER_ID", "WORKPATH_SLOTS", "WORKPATH_POOL"} <= set(
        names
    )
