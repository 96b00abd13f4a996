"""The commands and WORKPATH_* variables the chart gives its pods are the ones the real `workpath` CLI accepts,
with the values the chart means: a renamed flag or setting breaks this test, not a cluster."""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering
from workpath import cli, settings

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


@pytest.mark.parametrize("values", [{}, {"rbac": {"clusterWide": False}}], ids=["cluster-wide", "namespaced"])
def test_operator_command_is_accepted_by_the_cli(
    render: Callable[..., rendering.Rendered], values: dict[str, Any]
) -> None:
    workload = render(values).deployment_of("operator")
    assert workload is not None
    command = rendering.container(workload)["command"]
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "operator" not in commands.choices:
        pytest.skip("`workpath operator` is not written yet (no 'operator' entry point in workpath.commands)")

    args = _parse(command)  # argparse exits (status 2) on a flag it does not know.

    assert callable(args.func)
