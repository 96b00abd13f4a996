"""Operator HA in the chart: the replicas elect their leader on a Lease named after the release, in the pod's own
namespace, under the pod's name (from the downward API); the Service selects the leader by the label the leader puts
on its own pod, which no value may put on every pod; the RBAC for it is one Role in the release namespace (in either
rbac mode) with only the Lease verbs the election uses and the patch of pods there; rollouts are ordinary (a new pod
ready before an old one goes); a PodDisruptionBudget lets one replica go at a time (one not ready always); the
replicas spread across nodes; a single replica may run without an election, and its Service selects it alone."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering
from workpath_operator.kube import electing


def _operator(rendered: rendering.Rendered) -> dict[str, Any]:
    deployment = rendered.deployment_of("operator")
    assert deployment is not None, "no operator Deployment rendered"
    return deployment


def _lease_name(deployment: dict[str, Any]) -> str:
    command: list[str] = rendering.container(deployment)["command"]
    return command[command.index("--lease-name") + 1]


def test_the_lease_is_named_after_the_release_in_the_pods_namespace_held_by_the_pods_name(
    render: Callable[..., rendering.Rendered],
) -> None:
    deployment = _operator(render())
    env = rendering.env_of(deployment)

    assert _lease_name(deployment) == deployment["metadata"]["name"]
    # The operator's defaults: the Lease's namespace and the leader's identity are the pod's (tested with the CLI in
    # test_pod_commands_are_accepted_by_the_workpath_cli.py), and so is the pod it labels.
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert not {"WORKPATH_LEASE_NAMESPACE", "WORKPATH_LEADER_IDENTITY", "WORKPATH_POD_NAME"} & set(env)


def test_the_service_selects_the_ready_pod_the_leader_labelled(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render()
    (service,) = rendered.of_kind("Service")
    pod = rendering.pod_labels(_operator(rendered))

    assert service["spec"]["selector"][electing.LEADER_LABEL] == "true"
    assert rendering.selects(service["spec"]["selector"], pod | {electing.LEADER_LABEL: "true"})
    assert not rendering.selects(service["spec"]["selector"], pod)  # a standby
    assert not service["spec"].get("publishNotReadyAddresses")  # a SIGKILLed leader keeps its label, not ready


def test_no_value_puts_the_leader_label_on_every_pod(helm: rendering.Helm, chart: pathlib.Path) -> None:
    with pytest.raises(rendering.HelmError) as refused:
        helm.template(chart, {"operator": {"podLabels": {electing.LEADER_LABEL: "true"}}})

    assert "/operator/podLabels" in refused.value.stderr


def test_rollouts_start_a_new_pod_before_an_old_one_goes(render: Callable[..., rendering.Rendered]) -> None:
    deployment = _operator(render())

    # Every healthy replica is ready: a rollout waits for a new one, and keeps a standby throughout.
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


@pytest.mark.parametrize("cluster_wide", [True, False], ids=["cluster-wide", "namespaced"])
def test_the_election_rbac_is_one_role_in_the_release_namespace_with_the_verbs_used(
    render: Callable[..., rendering.Rendered], cluster_wide: bool
) -> None:
    rendered = render({"rbac": {"clusterWide": cluster_wide}})
    lease_rules = [
        (role["kind"], role["metadata"].get("namespace"), rule)
        for role in rendered.of_kind("Role") + rendered.of_kind("ClusterRole")
        for rule in role["rules"]
        if "leases" in rule["resources"]
    ]

    assert lease_rules == [
        (
            "Role",
            rendering.NAMESPACE,
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        ),
        (
            "Role",
            rendering.NAMESPACE,
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [_lease_name(_operator(rendered))],
                "verbs": ["get", "update"],
            },
        ),
    ]
    (role,) = [r for r in rendered.of_kind("Role") if r["metadata"]["name"].endswith("-operator-leader")]
    assert role["metadata"]["namespace"] == rendering.NAMESPACE
    # The replicas label their own pods; their names are the ReplicaSet's to make, so no resourceNames.
    assert [rule for rule in role["rules"] if "leases" not in rule["resources"]] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]}
    ]
    bindings = [b for b in rendered.of_kind("RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]]
    assert [b["subjects"] for b in bindings] == [
        [{"kind": "ServiceAccount", "name": "workpath-operator", "namespace": rendering.NAMESPACE}]
    ]


def test_one_replica_at_a_time_may_be_disrupted(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render()
    (budget,) = rendered.of_kind("PodDisruptionBudget")

    assert budget["spec"]["maxUnavailable"] == 1
    # A replica that is not ready serves nothing; it may always be evicted.
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert rendering.selects(budget["spec"]["selector"]["matchLabels"], rendering.pod_labels(_operator(rendered)))
    with_workers = render(rendering.WORKER_VALUES)
    worker = with_workers.deployment_of("worker")
    assert worker is not None
    (budget,) = with_workers.of_kind("PodDisruptionBudget")
    assert not rendering.selects(budget["spec"]["selector"]["matchLabels"], rendering.pod_labels(worker))


@pytest.mark.parametrize(
    "operator",
    [{"replicas": 1}, {"replicas": 0}, {"podDisruptionBudget": {"enabled": False}}],
    ids=["one-replica", "stopped", "disabled"],
)
def test_no_budget_without_a_second_replica_or_when_disabled(
    render: Callable[..., rendering.Rendered], operator: dict[str, Any]
) -> None:
    assert render({"operator": operator}).of_kind("PodDisruptionBudget") == []


def test_replicas_spread_across_nodes_unless_told_otherwise(render: Callable[..., rendering.Rendered]) -> None:
    deployment = _operator(render())
    (spread,) = rendering.pod_spec(deployment)["topologySpreadConstraints"]

    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert rendering.selects(spread["labelSelector"]["matchLabels"], rendering.pod_labels(deployment))

    zones = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]
    custom = _operator(render({"operator": {"topologySpreadConstraints": zones}}))
    assert rendering.pod_spec(custom)["topologySpreadConstraints"] == zones


def test_a_single_replica_may_run_without_an_election(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render({"operator": {"replicas": 1, "leaderElection": {"enabled": False}}})

    assert "--leader-elect" not in rendering.container(_operator(rendered))["command"]
    assert not [r for r in rendered.of_kind("Role") if r["metadata"]["name"].endswith("-operator-leader")]
    (service,) = rendered.of_kind("Service")
    assert electing.LEADER_LABEL not in service["spec"]["selector"]  # nobody would set it


def test_a_new_leader_is_seen_ready_within_a_second_or_two(render: Callable[..., rendering.Rendered]) -> None:
    probe = rendering.container(_operator(render()))["readinessProbe"]

    assert probe["httpGet"]["path"] == "/readyz"
    assert probe["periodSeconds"] <= 2
