"""A pool's worker pods are probed with `workpath probe`: the workers keep a status file on the pod's writable /tmp
(the root is read-only) where the probes, run in the container with its environment, read it. Startup waits for the
routines to be imported; readiness is "connected"; liveness gives a stuck event loop a bounded time, and the probes
are spaced out, since each starts Python."""

from __future__ import annotations

import pathlib
import posixpath
from typing import Any

from tests.chart import rendering
from workpath import cli, probing, settings
from workpath_operator.kube import pools

URL = "ws://wp-workpath.workpath-system.svc:7740/v1/workers"


def _render(**spec: Any) -> dict[str, Any]:
    body = {
        "metadata": {"name": "reports", "namespace": "analytics", "uid": "6f2b1c9e-0000-4000-8000-000000000001"},
        "spec": {"image": "registry.example/team/worker:1.0", "modules": ["examples.reports"], "routines": ["r.*"]}
        | spec,
    }
    connection = pools.WorkerConnection(url=URL)
    return pools.render_deployment(body, spec=pools.spec_of(body), connection=connection, replicas=1)


def _probe_kind(probe: dict[str, Any]) -> str:
    """What `workpath probe` checks for this probe, parsed by the real CLI."""
    command = probe["exec"]["command"]
    assert command[:2] == ["workpath", "probe"]
    args = cli.build_parser().parse_args(command[1:])
    assert args.func is cli.run_probe_command
    assert args.status_file is None  # from the container's environment, as the worker's
    kind: str = args.kind
    return kind


def test_startup_and_liveness_probe_live_and_readiness_probes_ready() -> None:
    container = rendering.container(_render())

    kinds = {name: _probe_kind(container[name]) for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert kinds == {"startupProbe": "live", "readinessProbe": "ready", "livenessProbe": "live"}


def test_the_worker_writes_its_status_file_on_the_writable_tmp_volume_where_the_probes_read_it() -> None:
    deployment = _render()
    pod, container = rendering.pod_spec(deployment), rendering.container(deployment)
    environ = {name: entry["value"] for name, entry in rendering.env_of(deployment).items() if "value" in entry}
    worker = settings.WorkerSettings.load(environ)

    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert worker.status_file == pathlib.Path(environ[probing.ENV_STATUS_FILE]) == pathlib.Path(pools.STATUS_FILE)
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    mount = mounts[posixpath.dirname(posixpath.dirname(pools.STATUS_FILE))]
    assert not mount.get("readOnly", False)
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == mount["name"]]
    assert "emptyDir" in volume  # one per pod: workers on one node do not share it


def test_probe_timings_leave_time_to_start_and_restart_only_a_stuck_worker() -> None:
    container = rendering.container(_render())
    startup, readiness, liveness = (container[name] for name in ("startupProbe", "readinessProbe", "livenessProbe"))
    stale_after = probing.STALE_INTERVALS * settings.WorkerSettings.load({}).status_interval

    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # importing big routine modules
    for probe in (startup, readiness, liveness):
        assert probe["timeoutSeconds"] >= 5  # a Python start on a busy node
    # A refresh the probe just missed is not a stuck loop: failing takes several probes past the bound.
    assert liveness["periodSeconds"] * (liveness["failureThreshold"] - 1) > stale_after
    # Each probe starts Python: at most one every 5 s in a running pod on average.
    assert 1 / readiness["periodSeconds"] + 1 / liveness["periodSeconds"] <= 1 / 5
    assert readiness["failureThreshold"] >= 2  # a quick reconnect does not flap the pod


def test_the_probes_are_valid_and_part_of_the_pod_template() -> None:
    deployment = _render()

    assert rendering.validation_errors(deployment, {}) == []
    plain = _render()
    del rendering.container(plain)["livenessProbe"]
    assert pools.template_hash(plain) != pools.template_hash(deployment)  # changing them rolls the pods


def test_a_status_file_from_the_spec_env_moves_the_workers_and_the_probes_file_alike() -> None:
    deployment = _render(env=[{"name": "WORKPATH_STATUS_FILE", "value": "/data/status"}])

    (entry,) = [entry for entry in rendering.container(deployment)["env"] if entry["name"] == probing.ENV_STATUS_FILE]
    assert entry["value"] == "/data/status"  # the worker and `workpath probe` both read this variable
