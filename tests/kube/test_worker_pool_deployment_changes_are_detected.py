"""The controller can tell when a pool's Deployment must be applied again: the template-hash annotation changes with
the spec (not with the replicas), and `differences` finds hand edits of the live Deployment while ignoring what the
API server adds or rewrites."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from workpath_operator.kube import pools

CONNECTION = pools.WorkerConnection(url="ws://wp-workpath.workpath-system.svc:7740/v1/workers")


def _render(*, replicas: int = 2, connection: pools.WorkerConnection = CONNECTION, **spec: Any) -> dict[str, Any]:
    body = {
        "metadata": {"name": "reports", "namespace": "analytics", "uid": "u-1"},
        "spec": {
            "image": "workpath/worker:0.1.0",
            "modules": ["examples.reports"],
            "routines": ["reports.*"],
            "resources": {"requests": {"cpu": "1000m", "memory": "0.5Gi"}, "limits": {"memory": "1024Mi"}},
        }
        | spec,
    }
    return pools.render_deployment(body, spec=pools.spec_of(body), connection=connection, replicas=replicas)


def _hash(deployment: dict[str, Any]) -> str:
    annotation: str = deployment["metadata"]["annotations"][pools.TEMPLATE_HASH_ANNOTATION]
    return annotation


def _as_served(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Deployment as the API server returns it: defaults filled in, quantities canonical, others' metadata."""
    live = copy.deepcopy(deployment)
    live["metadata"] |= {"uid": "d-1", "resourceVersion": "42", "generation": 3, "managedFields": []}
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "2"
    live["spec"] |= {"revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, "strategy": {"type": "RollingUpdate"}}
    pod = live["spec"]["template"]["spec"]
    pod |= {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"}
    pod["volumes"][0]["projected"]["defaultMode"] = 420
    (container,) = pod["containers"]
    container |= {"terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
    container["resources"] = {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    return live


def test_the_hash_annotation_is_the_hash_of_the_template() -> None:
    deployment = _render()

    assert _hash(deployment) == pools.template_hash(deployment)
    assert len(_hash(deployment)) == 16


def test_the_hash_is_stable_and_ignores_the_replicas() -> None:
    assert _hash(_render()) == _hash(_render())
    assert _hash(_render(replicas=0)) == _hash(_render(replicas=7))


@pytest.mark.parametrize(
    "change",
    [
        {"image": "workpath/worker:0.2.0"},
        {"modules": ["examples.reports", "team.jobs"]},
        {"slots": 4},
        {"drainTimeoutSeconds": 90},
        {"env": [{"name": "WORKPATH_LOG_LEVEL", "value": "debug"}]},
        {"podLabels": {"team": "reports"}},
        {"nodeSelector": {"kubernetes.io/os": "linux"}},
        {"serviceAccountName": "reports-worker"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_a_spec_change_changes_the_hash(change: dict[str, Any]) -> None:
    assert _hash(_render(**change)) != _hash(_render())


def test_a_change_of_connection_changes_the_hash() -> None:
    moved = pools.WorkerConnection(url="ws://jobs-workpath.jobs.svc:7740/v1/workers")

    assert _hash(_render(connection=moved)) != _hash(_render())


def test_scaling_only_rules_do_not_change_the_pods() -> None:
    scaled = _render(minReplicas=2, maxReplicas=30, scaleDownDelaySeconds=5, routines=["*"])

    assert _hash(scaled) == _hash(_render())


def test_the_live_deployment_as_served_has_no_differences() -> None:
    rendered = _render()

    assert pools.differences(rendered, _as_served(rendered)) == []


def test_hand_edits_are_found() -> None:
    rendered = _render()
    live = _as_served(rendered)
    live["spec"]["replicas"] = 9
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil/worker:latest"
    live["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2"
    del live["spec"]["template"]["spec"]["securityContext"]
    del live["metadata"]["labels"][pools.POOL_LABEL]
    del live["metadata"]["ownerReferences"]

    assert sorted(pools.differences(rendered, live)) == [
        ".metadata.labels.workpath.dev/pool",
        ".metadata.ownerReferences",
        ".spec.replicas",
        ".spec.template.spec.containers[0].env",
        ".spec.template.spec.containers[0].image",
        ".spec.template.spec.containers[0].resources.requests.cpu",
        ".spec.template.spec.securityContext",
    ]


def test_a_deployment_that_is_not_an_object_differs_at_the_top() -> None:
    assert pools.differences(_render(), None) == ["."]


def test_quantities_compare_by_value_only_where_they_are_quantities() -> None:
    env = [{"name": "SIZE", "value": "1k"}]
    rendered = _render(env=env)
    live = _as_served(rendered)
    live["spec"]["template"]["spec"]["containers"][0]["env"][-1]["value"] = "1000"
    last = len(live["spec"]["template"]["spec"]["containers"][0]["env"]) - 1  # the spec's SIZE, after ours

    assert pools.differences(rendered, live) == [f".spec.template.spec.containers[0].env[{last}].value"]
