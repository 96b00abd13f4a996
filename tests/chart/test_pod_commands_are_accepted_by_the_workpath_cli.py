"""The commands and WORKPATH_* variables the chart gives its pods are the ones the real `workpath` CLI accepts,
with the values the chart means: a renamed flag or setting breaks this test, not a cluster."""

from __future__ import annotations

import argparse
import os
import pathlib
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from tests.chart import rendering
from workpath import cli, settings
from workpath_operator.kube import settings as kube_settings

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
    worker_settings = settings.WorkerSettings.load(_environment(workload), **settings.WorkerSettings.flag_values(args))

    assert args.func is cli.run_worker_command
    assert args.modules == ["examples.reports"]
    assert worker_settings.url == f"ws://wp-workpath.{rendering.NAMESPACE}.svc:{rendering.DIRECTIVE_PORT}/v1/workers"
    assert worker_settings.token is None
    assert worker_settings.token_file == pathlib.Path("/var/run/secrets/workpath/token")
    assert (worker_settings.slots, worker_settings.pool, worker_settings.worker_id) == (4, "reports", POD_NAME)


OPERATOR_CASES = {
    "cluster-wide": ({}, {"all_namespaces": True, "namespaces": ()}),
    "namespaced": ({"rbac": {"clusterWide": False}}, {"all_namespaces": False, "namespaces": (rendering.NAMESPACE,)}),
    "any-account": ({"operator": {"allowAnyServiceAccount": True}}, {"allow_any_service_account": True}),
    "everything": (
        rendering.VALUE_SETS["everything"],
        {
            "all_namespaces": False,
            "namespaces": (rendering.NAMESPACE,),
            # The chart's workers' account first, then those named.
            "allowed_service_accounts": (
                f"{rendering.NAMESPACE}:workpath-worker",
                "workpath-system:workpath-worker",
                "analytics:reports-worker",
            ),
            "allow_any_service_account": False,
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
    # As `workpath operator` loads them: from the process's environment (the pod's POD_NAME and POD_NAMESPACE are
    # the defaults of settings that are not WORKPATH_* variables).
    with mock.patch.dict(os.environ, _environment(workload), clear=True):
        operator_settings = kube_settings.OperatorSettings.load(**kube_settings.OperatorSettings.flag_values(args))

    assert args.func.__name__ == "_operator"
    assert {key: getattr(operator_settings, key) for key in expected} == expected
    # Workers' tokens are checked with TokenReview for the audience the chart's projected tokens carry.
    assert operator_settings.token_review is True
    assert operator_settings.token_audience == rendering.AUDIENCE
    assert (operator_settings.host, operator_settings.port) == ("0.0.0.0", rendering.DIRECTIVE_PORT)
    # The replicas elect their leader on a Lease in the pod's namespace, each under its pod's name.
    assert operator_settings.leader_elect is True
    assert (operator_settings.election_namespace, operator_settings.leader_identity) == (rendering.NAMESPACE, POD_NAME)
    # The leader labels its own pod.
    assert operator_settings.own_pod == (rendering.NAMESPACE, POD_NAME)
