"""The operator Deployment: two replicas electing a leader, its own ServiceAccount, the command per rbac.clusterWide,
probes on the directive service's /healthz and /readyz, resources, and a locked-down security context (as are the
workers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering

VALUE_SETS = pytest.mark.parametrize("values", rendering.VALUE_SETS.values(), ids=rendering.VALUE_SETS.keys())


def _operator(rendered: rendering.Rendered) -> dict[str, Any]:
    deployment = rendered.deployment_of("operator")
    assert deployment is not None, "no operator Deployment rendered"
    return deployment


def test_operator_runs_two_replicas_that_elect_a_leader_with_its_service_account(
    render: Callable[..., rendering.Rendered],
) -> None:
    deployment = _operator(render())

    assert deployment["spec"]["replicas"] == 2
    # Every healthy replica is ready: a rollout keeps one ready while it replaces the others (see the HA tests).
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "--leader-elect" in rendering.container(deployment)["command"]
    assert rendering.pod_spec(deployment)["serviceAccountName"] == "workpath-operator"
    assert rendering.pod_spec(deployment).get("automountServiceAccountToken", True) is True


def test_operator_service_account_name_comes_from_values(render: Callable[..., rendering.Rendered]) -> None:
    deployment = _operator(render({"operator": {"serviceAccount": {"create": True, "name": "ops"}}}))

    assert rendering.pod_spec(deployment)["serviceAccountName"] == "ops"


def test_operator_can_be_stopped_with_zero_replicas(render: Callable[..., rendering.Rendered]) -> None:
    assert _operator(render(rendering.VALUE_SETS["stopped"]))["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("values", "scope"),
    [
        ({}, ["--all-namespaces"]),
        ({"rbac": {"clusterWide": True}}, ["--all-namespaces"]),
        ({"rbac": {"clusterWide": False}}, ["--namespace", rendering.NAMESPACE]),
    ],
    ids=["default", "cluster-wide", "namespaced"],
)
def test_operator_command_watches_the_namespaces_its_rbac_allows(
    render: Callable[..., rendering.Rendered], values: dict[str, Any], scope: list[str]
) -> None:
    rendered = render(values)
    command = rendering.container(_operator(rendered))["command"]
    (service,) = rendered.of_kind("Service")
    # Worker pods of WorkerPools reach the operator through its Service.
    worker_url = (
        f"ws://{service['metadata']['name']}.{rendering.NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/v1/workers"
    )

    assert command == [
        "workpath",
        "operator",
        *scope,
        "--host",
        "0.0.0.0",
        "--port",
        str(rendering.DIRECTIVE_PORT),
        "--worker-url",
        worker_url,
        "--leader-elect",
        "--lease-name",
        service["metadata"]["name"],
        # Worker tokens of the chart's workers' account are accepted (and those of the WorkerPools' accounts).
        "--allowed-service-account",
        f"{rendering.NAMESPACE}:workpath-worker",
    ]


def test_operator_extra_args_follow_the_command(render: Callable[..., rendering.Rendered]) -> None:
    command = rendering.container(_operator(render({"operator": {"extraArgs": ["--log-level", "debug"]}})))["command"]

    assert command[-2:] == ["--log-level", "debug"]


@pytest.mark.parametrize("port", [rendering.DIRECTIVE_PORT, 8080])
def test_probes_ask_the_directive_service_for_health_and_readiness(
    render: Callable[..., rendering.Rendered], port: int
) -> None:
    deployment = _operator(render({"operator": {"port": port}}))
    container = rendering.container(deployment)
    ports = {declared["name"]: declared["containerPort"] for declared in container["ports"]}

    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert ports[probe["port"]] == port  # By name: the port the operator listens on.
    assert container["command"][container["command"].index("--port") + 1] == str(port)


def test_operator_has_resources(render: Callable[..., rendering.Rendered]) -> None:
    resources = rendering.container(_operator(render()))["resources"]

    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


@VALUE_SETS
def test_every_pod_is_non_root_read_only_without_capabilities(
    render: Callable[..., rendering.Rendered], values: dict[str, Any]
) -> None:
    workloads = render(values).workloads()

    assert workloads
    for workload in workloads:
        pod = rendering.pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        # Service links would inject WORKPATH_PORT=tcp://... from a Service named "workpath" into the settings.
        assert pod["enableServiceLinks"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert context.get("privileged", False) is False
            # A read-only root still needs a scratch directory.
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            tmp = next(volume for volume in pod["volumes"] if volume["name"] == mounts["/tmp"])
            assert "emptyDir" in tmp


def test_operator_image_defaults_to_the_chart_app_version(
    render: Callable[..., rendering.Rendered], chart_app_version: str
) -> None:
    assert rendering.container(_operator(render()))["image"] == f"workpath/operator:{chart_app_version}"
    custom = render({"operator": {"image": {"repository": "registry.example/op", "tag": "9.9"}}})
    assert rendering.container(_operator(custom))["image"] == "registry.example/op:9.9"


def test_extra_volumes_are_mounted_in_both_workloads(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render(rendering.VALUE_SETS["everything"])
    expected = {"operator": ("ca", "/etc/ssl/corporate"), "worker": ("data", "/data")}

    for component, (volume, path) in expected.items():
        workload = rendered.deployment_of(component)
        assert workload is not None
        assert volume in {v["name"] for v in rendering.pod_spec(workload)["volumes"]}
        assert {"name": volume, "mountPath": path} in [
            {key: mount[key] for key in ("name", "mountPath")}
            for mount in rendering.container(workload)["volumeMounts"]
        ]
