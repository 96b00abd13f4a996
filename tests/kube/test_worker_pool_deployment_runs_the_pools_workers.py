"""A WorkerPool's Deployment: owned by the pool, its pods run `workpath worker MODULES --pool NAME --slots N`, reach the
directive service and prove who they are as the chart's workers do, under the restricted Pod Security Standard, with
time to drain, and with the pod-template overrides of the spec."""

from __future__ import annotations

import pathlib
import posixpath
from typing import Any

import pytest

from tests.chart import rendering
from workpath import cli, settings
from workpath_operator.kube import pools

URL = "ws://wp-workpath.workpath-system.svc:7740/v1/workers"
CONNECTION = pools.WorkerConnection(url=URL)
POD_NAME = "reports-workers-7c9f-abcde"


def _render(name: str = "reports", *, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": pools.API_VERSION,
        "kind": pools.KIND,
        "metadata": {"name": name, "namespace": "analytics", "uid": "6f2b1c9e-0000-4000-8000-000000000001"},
        "spec": {"image": "registry.example/team/worker:1.0", "modules": ["examples.reports"], "routines": ["r.*"]}
        | spec,
    }
    return pools.render_deployment(body, spec=pools.spec_of(body), connection=CONNECTION, replicas=replicas)


def _worker_settings(deployment: dict[str, Any]) -> settings.WorkerSettings:
    """The worker's settings as its container starts: command-line flags over the environment the kubelet sets."""
    command = rendering.container(deployment)["command"]
    assert command[:2] == ["workpath", "worker"]
    args = cli.build_parser().parse_args(command[1:])
    assert args.func is cli.run_worker_command
    environ = {name: entry.get("value", POD_NAME) for name, entry in rendering.env_of(deployment).items()}
    overrides = {name: getattr(args, name, None) for name in settings.WorkerSettings.model_fields}
    return settings.WorkerSettings.load(environ, **overrides)


def test_the_deployment_is_owned_by_its_pool_and_selects_its_pods() -> None:
    deployment = _render(replicas=3)
    metadata, spec = deployment["metadata"], deployment["spec"]

    assert (metadata["name"], metadata["namespace"]) == ("reports-workers", "analytics")
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "workpath.dev/v1alpha1",
            "kind": "WorkerPool",
            "name": "reports",
            "uid": "6f2b1c9e-0000-4000-8000-000000000001",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {pools.POOL_LABEL: "reports"}}
    assert spec["selector"]["matchLabels"] == pools.selector_labels("reports")
    assert rendering.selects(spec["selector"]["matchLabels"], rendering.pod_labels(deployment))
    assert metadata["labels"][pools.POOL_LABEL] == "reports"


def test_the_deployment_is_a_valid_kubernetes_object() -> None:
    everything: dict[str, Any] = {
        "resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "imagePullSecrets": [{"name": "registry"}],
        "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}],
    }
    for deployment in (_render(), _render(**everything)):
        assert rendering.validation_errors(deployment, {}) == []


def test_the_workers_run_the_modules_in_the_pool_with_its_slots_and_drain_timeout() -> None:
    deployment = _render(modules=["examples.reports", "team.jobs"], slots=4, drainTimeoutSeconds=50)
    worker = _worker_settings(deployment)

    assert rendering.container(deployment)["command"][2:4] == ["examples.reports", "team.jobs"]
    assert (worker.pool, worker.slots, worker.drain_timeout) == ("reports", 4, 50)
    assert worker.worker_id == POD_NAME


def test_the_workers_reach_the_directive_service_with_a_projected_token_for_the_operator() -> None:
    deployment = _render()
    pod = rendering.pod_spec(deployment)
    container = rendering.container(deployment)
    worker = _worker_settings(deployment)

    assert worker.url == URL
    assert worker.token is None
    (volume,) = [volume for volume in pod["volumes"] if "projected" in volume]
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert token == {"audience": "workpath", "expirationSeconds": 600, "path": "token"}
    (mount,) = [mount for mount in container["volumeMounts"] if mount["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert worker.token_file == pathlib.Path(posixpath.join(mount["mountPath"], token["path"]))
    assert pod["automountServiceAccountToken"] is False


def test_token_audience_and_lifetime_come_from_the_connection() -> None:
    body = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {"image": "w", "modules": ["m"], "routines": ["*"]},
    }
    connection = pools.WorkerConnection(url=URL, token_audience="jobs", token_expiration_seconds=3600)
    deployment = pools.render_deployment(body, spec=pools.spec_of(body), connection=connection, replicas=0)
    (volume,) = [volume for volume in rendering.pod_spec(deployment)["volumes"] if "projected" in volume]

    assert volume["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "jobs"
    assert volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600


def test_the_connection_refuses_a_short_token_lifetime_and_a_bad_url() -> None:
    with pytest.raises(ValueError, match="token_expiration_seconds"):
        pools.WorkerConnection(url=URL, token_expiration_seconds=60)
    with pytest.raises(ValueError, match="url"):
        pools.WorkerConnection(url="http://operator:7740")


def test_the_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = rendering.pod_spec(_render())

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["enableServiceLinks"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    # Restricted allows only these volume types.
    allowed = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    assert all(set(volume) - {"name"} <= allowed for volume in pod["volumes"])
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert any(volume["name"] == mounts["/tmp"] and "emptyDir" in volume for volume in pod["volumes"])


@pytest.mark.parametrize("drain", [0, 30, 600])
def test_the_grace_period_lets_a_draining_worker_finish(drain: int) -> None:
    deployment = _render(drainTimeoutSeconds=drain)
    worker = _worker_settings(deployment)

    grace = rendering.pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace > worker.drain_timeout + worker.confirm_timeout


def test_pod_template_overrides_come_from_the_spec() -> None:
    overrides: dict[str, Any] = {
        "serviceAccountName": "reports-worker",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "workers", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "priorityClassName": "batch",
        "imagePullSecrets": [{"name": "registry"}],
    }
    deployment = _render(
        **overrides,
        podLabels={"team": "reports", "app.kubernetes.io/component": "mine"},
        podAnnotations={"prometheus.io/scrape": "true"},
        resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}},
    )
    pod = rendering.pod_spec(deployment)
    template = deployment["spec"]["template"]["metadata"]

    assert {key: pod[key] for key in overrides} == overrides
    assert rendering.container(deployment)["image"] == "registry.example/team/worker:1.0"
    assert rendering.container(deployment)["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}
    assert template["labels"]["team"] == "reports"
    assert template["labels"]["app.kubernetes.io/component"] == "worker"  # the operator's labels win
    assert template["annotations"] == {"prometheus.io/scrape": "true"}


def test_unset_overrides_are_left_out() -> None:
    deployment = _render()
    pod = rendering.pod_spec(deployment)

    absent = {"serviceAccountName", "nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"}
    assert absent.isdisjoint(pod)
    assert "resources" not in rendering.container(deployment)
    assert "annotations" not in deployment["spec"]["template"]["metadata"]


def test_spec_env_comes_after_the_operators_and_replaces_a_variable_of_the_same_name() -> None:
    deployment = _render(
        env=[{"name": "WORKPATH_LOG_LEVEL", "value": "debug"}, {"name": "WORKPATH_URL", "value": "wss://elsewhere/w"}]
    )
    env = rendering.container(deployment)["env"]

    assert [entry["name"] for entry in env] == [
        "WORKPATH_URL",
        "WORKPATH_TOKEN_FILE",
        "WORKPATH_WORKER_ID",
        "WORKPATH_STATUS_FILE",
        "WORKPATH_LOG_LEVEL",
    ]
    assert env[0]["value"] == "wss://elsewhere/w"
    assert _worker_settings(deployment).log_level == "debug"


def test_spec_env_cannot_change_the_pool_or_slots() -> None:
    deployment = _render(
        slots=3, env=[{"name": "WORKPATH_POOL", "value": "x"}, {"name": "WORKPATH_SLOTS", "value": "9"}]
    )
    worker = _worker_settings(deployment)

    assert (worker.pool, worker.slots) == ("reports", 3)
