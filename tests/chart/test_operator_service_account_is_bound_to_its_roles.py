"""templates/rbac.yaml's contract with the rest of the chart: the operator's ServiceAccount (named by
operator.serviceAccount.name, in the release namespace) is created when operator.serviceAccount.create, bound to roles
the chart renders, cluster-wide or in the release namespace per rbac.clusterWide; the workers' account is bound to none.
(tests/chart/test_chart_installs.py checks the permissions themselves, with SubjectAccessReviews.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering

VALUE_SETS = pytest.mark.parametrize("values", rendering.VALUE_SETS.values(), ids=rendering.VALUE_SETS.keys())


def _account(values: dict[str, Any]) -> str:
    name: str = values.get("operator", {}).get("serviceAccount", {}).get("name", "workpath-operator")
    return name


@VALUE_SETS
def test_operator_service_account_is_created_and_bound(
    render: Callable[..., rendering.Rendered], values: dict[str, Any]
) -> None:
    rendered = render(values)
    account = _account(values)

    assert rendered.get("ServiceAccount", account)["metadata"]["namespace"] == rendering.NAMESPACE
    bindings = list(rendering.bindings_naming(rendered, account, rendering.NAMESPACE))
    assert bindings, f"no RoleBinding or ClusterRoleBinding names ServiceAccount {account}"
    for binding in bindings:
        role = binding["roleRef"]
        assert rendered.find(role["kind"], role["name"]) is not None, f"{binding['metadata']['name']} -> {role}"


@pytest.mark.parametrize(("cluster_wide", "kind"), [(True, "ClusterRoleBinding"), (False, "RoleBinding")])
def test_workpath_resources_are_granted_per_rbac_scope(
    render: Callable[..., rendering.Rendered], cluster_wide: bool, kind: str
) -> None:
    rendered = render({"rbac": {"clusterWide": cluster_wide}})
    account = _account({})

    granting = [
        binding
        for binding in rendering.bindings_naming(rendered, account, rendering.NAMESPACE)
        if any(
            "workpath.dev" in rule.get("apiGroups", []) and "routines" in rule.get("resources", [])
            for rule in rendered.get(binding["roleRef"]["kind"], binding["roleRef"]["name"]).get("rules", [])
        )
    ]
    assert [binding["kind"] for binding in granting] == [kind]
    if kind == "RoleBinding":
        assert granting[0]["metadata"]["namespace"] == rendering.NAMESPACE


def test_no_operator_service_account_when_brought_by_the_user(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render({"operator": {"serviceAccount": {"create": False, "name": "mine"}}})

    assert rendered.find("ServiceAccount", "mine") is None
    assert rendering.pod_spec(rendered.deployment_of("operator") or {})["serviceAccountName"] == "mine"
