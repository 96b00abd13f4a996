"""The commands and WORKPATH_* variables the chart gives its pods are the ones the real `workpath` CLI accepts,
with the values the chart means: a renamed flag or setting breaks this test, not a cluster."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering
from workpath import cli, settings
from workpath_operator.service import settings as operator_settings

POD_NAME = "wp-workpath-worker-7c9f-abcde"


def _environment(workload: dict[str, Any]) -> dict[str, str]:
    """The container's variables as the kubelet sets them, for a pod named :data:`POD_NAME`."""
    fields = {"metadata.name": POD_NAME, "metadata.namespace": rendering.NAMESPACE}
    environ = {}
    for name, entry in rendering.env_of(workload).items():
        if "value" in entry:
            environ[name] = entry["value"]
        else:
            environ[name] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return environ


def _parse(command: list[str]) -> argparse.Namespace:
    assert command[0] == "workpath"
    return cli.build_parser().parse_args(command[1:])


def test_worker_command_and_environment_configure_the_worker(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render(rendering.WORKER_VALUES)
    workload = rendered.deployment_of("worker")
    assert workload is not None

    args = _parse(rendering.container(workload)["command"])
    overrides = {name: getattr(args, name) for name in settings.WorkerSettings.model_fields}
    config = settings.WorkerSettings.load(_environment(workload), **overrides)

    assert args.func is cli.run_worker_command
    assert args.modules == ["examples.reports"]
    assert config.url == f"ws://wp-workpath.{rendering.NAMESPACE}.svc:{rendering.DIRECTIVE_PORT}/v1/workers"
    assert config.token is None
    assert config.token_file == pathlib.Path("/var/run/secrets/workpath/token")
    assert (config.slots, config.pool, config.worker_id) == (4, "reports", POD_NAME)


OPERATOR_CASES = {
    "cluster-wide": ({}, {"all_namespaces": True, "namespaces": ()}),
    "namespaced": ({"rbac": {"clusterWide": False}}, {"all_namespaces": False, "namespaces": (rendering.NAMESPACE,)}),
    "everything": (
        rendering.VALUE_SETS["everything"],
        {
            "all_namespaces": False,
            "namespaces": (rendering.NAMESPACE,),
            "allowed_service_accounts": ("workpath-system:workpath-worker", "analytics:reports-worker"),
        },
    ),
}


@pytest.mark.parametrize(("values", "expected"), OPERATOR_CASES.values(), ids=OPERATOR_CASES.keys())
def test_operator_command_configures_the_operator(
    render: Callable[..., rendering.Rendered], values: dict[str, Any], expected: dict[str, Any]
) -> None:
    workload = render(values).deployment_of("operator")
    assert workload is not None

    args = _parse(rendering.container(workload)["command"])  # argparse exits (status 2) on an unknown flag.
    given = {key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")}
    operator_fields = {field.name for field in dataclasses.fields(operator_settings.OperatorSettings)}
    options = operator_settings.OperatorSettings.from_env(
        {}, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if k in operator_fields}
    )
    service = operator_settings.ServiceSettings.from_env(
        {}, **{k: v for k, v in given.items() if k not in operator_fields}
    )

    assert args.func.__name__ == "_operator"
    assert {key: getattr(options, key) for key in expected} == expected
    # Workers' tokens are checked with TokenReview for the audience the chart's projected tokens carry.
    assert options.token_review is True
    assert options.token_audience == rendering.AUDIENCE
    assert (service.host, service.port) == ("0.0.0.0", rendering.DIRECTIVE_PORT)
