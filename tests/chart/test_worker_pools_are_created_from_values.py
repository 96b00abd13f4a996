"""WorkerPools listed in values become WorkerPool resources in the release namespace, valid for their CRD, with the
chart's worker image and ServiceAccount unless a pool names its own."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from tests.chart import rendering


def test_no_worker_pools_by_default(render: Callable[..., rendering.Rendered]) -> None:
    assert render().of_kind("WorkerPool") == []


def test_worker_pools_get_spec_from_values_and_chart_defaults(
    render: Callable[..., rendering.Rendered], chart_app_version: str
) -> None:
    rendered = render(rendering.POOL_VALUES)
    reports, big = rendered.get("WorkerPool", "reports"), rendered.get("WorkerPool", "big")

    assert reports["apiVersion"] == "workpath.dev/v1alpha1"
    assert reports["metadata"]["namespace"] == rendering.NAMESPACE
    assert reports["spec"] == {
        "image": f"workpath/worker:{chart_app_version}",
        "serviceAccountName": "workpath-worker",
        "modules": ["examples.reports"],
        "routines": ["reports.*"],
        "slots": 5,
        "minReplicas": 0,
        "maxReplicas": 3,
    }
    expected_big = {key: value for key, value in rendering.POOL_VALUES["workerPools"][1].items() if key != "name"}
    assert big["spec"] == expected_big


def test_pools_alone_create_the_worker_service_account(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render(rendering.POOL_VALUES)

    assert rendered.deployment_of("worker") is None
    assert rendered.get("ServiceAccount", "workpath-worker")["automountServiceAccountToken"] is False


def test_worker_pools_are_valid_for_their_crd(render: Callable[..., rendering.Rendered]) -> None:
    pools = render(rendering.POOL_VALUES).of_kind("WorkerPool")
    custom = rendering.custom_resource_schemas()

    assert len(pools) == 2
    assert [error for pool in pools for error in rendering.validation_errors(pool, custom)] == []


def test_crd_schema_check_catches_a_bad_pool() -> None:
    # The check above must be able to fail: a pool with a bad slots value is reported.
    pool = {
        "apiVersion": "workpath.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "bad"},
        "spec": {"image": "x", "modules": ["m"], "routines": ["a.b"], "slots": 0},
    }

    (error,) = rendering.validation_errors(pool, rendering.custom_resource_schemas())
    assert error.startswith("WorkerPool/bad: spec.slots:")


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ([{"modules": ["m"], "routines": ["a.b"]}], "missing property 'name'"),
        ([{"name": "p", "modules": ["m"]}], "missing property 'routines'"),
        ([{"name": "p", "routines": ["a.b"]}], "missing property 'modules'"),
        ([{"name": "Bad_Name", "modules": ["m"], "routines": ["a.b"]}], "/workerPools/0/name"),
    ],
)
def test_bad_pools_are_refused(
    helm: rendering.Helm, chart: pathlib.Path, pools: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(rendering.HelmError) as refused:
        helm.template(chart, {"workerPools": pools})

    assert message in refused.value.stderr
