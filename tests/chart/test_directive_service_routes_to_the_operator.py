"""The Service of the directive service selects the operator's pods (and only those; the leader's when they elect
one) on port 7740, and every Deployment's selector matches its own pods and no other Deployment's."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering
from workpath_operator.kube import electing

VALUE_SETS = pytest.mark.parametrize("values", rendering.VALUE_SETS.values(), ids=rendering.VALUE_SETS.keys())


@VALUE_SETS
def test_service_sends_traffic_to_the_operator_port(
    render: Callable[..., rendering.Rendered], values: dict[str, Any]
) -> None:
    rendered = render(values)
    (service,) = rendered.of_kind("Service")
    operator = rendered.deployment_of("operator")
    assert operator is not None

    (port,) = service["spec"]["ports"]
    assert port["port"] == rendering.DIRECTIVE_PORT
    assert port["protocol"] == "TCP"
    container_ports = {p["name"]: p["containerPort"] for p in rendering.container(operator)["ports"]}
    assert container_ports[port["targetPort"]] == rendering.DIRECTIVE_PORT
    assert service["spec"]["type"] == "ClusterIP"
    # With leader election, the leader's pod: it adds the leader label to its own labels.
    leading = {electing.LEADER_LABEL: "true"} if "--leader-elect" in rendering.container(operator)["command"] else {}
    assert rendering.selects(service["spec"]["selector"], rendering.pod_labels(operator) | leading)
    for other in rendered.workloads():
        if other is not operator:
            assert not rendering.selects(service["spec"]["selector"], rendering.pod_labels(other) | leading)


@VALUE_SETS
def test_each_deployment_selects_its_own_pods_only(
    render: Callable[..., rendering.Rendered], values: dict[str, Any]
) -> None:
    workloads = render(values).workloads()

    for workload in workloads:
        selector = workload["spec"]["selector"]["matchLabels"]
        assert rendering.selects(selector, rendering.pod_labels(workload)), workload["metadata"]["name"]
        # Version labels change on upgrade; a Deployment's selector is immutable.
        assert not {"app.kubernetes.io/version", "helm.sh/chart"} & selector.keys()
    for one, other in itertools.permutations(workloads, 2):
        assert not rendering.selects(one["spec"]["selector"]["matchLabels"], rendering.pod_labels(other))


def test_service_port_comes_from_values(render: Callable[..., rendering.Rendered]) -> None:
    (service,) = render({"service": {"port": 80, "type": "LoadBalancer"}}).of_kind("Service")

    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == "directive"
