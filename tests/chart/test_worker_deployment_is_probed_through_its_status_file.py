"""The chart's worker Deployment is probed as the operator's pool Deployments are: `workpath probe ready|live` on the
status file the worker keeps on its /tmp emptyDir, named by WORKPATH_STATUS_FILE, with the same timings."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

from tests.chart import rendering
from workpath import cli, probing, settings
from workpath_operator.kube import pools

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _worker(render: Callable[..., rendering.Rendered], values: dict[str, Any] = rendering.WORKER_VALUES) -> Any:
    workload = render(values).deployment_of("worker")
    assert workload is not None, "no worker Deployment rendered"
    return workload


def _pool_container() -> dict[str, Any]:
    body = {
        "metadata": {"name": "reports", "namespace": rendering.NAMESPACE, "uid": "u"},
        "spec": {"image": "workpath/worker:1", "modules": ["examples.reports"], "routines": ["reports.*"]},
    }
    connection = pools.WorkerConnection(url="ws://wp-workpath.workpath-system.svc:7740/v1/workers")
    deployment = pools.render_deployment(body, spec=pools.spec_of(body), connection=connection, replicas=1)
    return rendering.container(deployment)


def test_the_worker_probes_are_the_pools_probes(render: Callable[..., rendering.Rendered]) -> None:
    container = rendering.container(_worker(render))
    pool = _pool_container()

    assert {name: container[name] for name in PROBES} == {name: pool[name] for name in PROBES}
    for name, kind in zip(PROBES, ("live", "ready", "live"), strict=True):
        args = cli.build_parser().parse_args(container[name]["exec"]["command"][1:])
        assert (args.func, args.kind, args.status_file) == (cli.run_probe_command, kind, None)


def test_the_worker_keeps_its_status_file_where_the_probes_read_it(render: Callable[..., rendering.Rendered]) -> None:
    workload = _worker(render)
    environ = {name: entry["value"] for name, entry in rendering.env_of(workload).items() if "value" in entry}
    container = rendering.container(workload)

    assert settings.WorkerSettings.load(environ).status_file == pathlib.Path(pools.STATUS_FILE)
    assert environ[probing.ENV_STATUS_FILE] == pools.STATUS_FILE
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    (tmp,) = [volume for volume in rendering.pod_spec(workload)["volumes"] if volume["name"] == mounts["/tmp"]]
    assert "emptyDir" in tmp
    assert pools.STATUS_FILE.startswith("/tmp/")


def test_extra_env_can_move_the_status_file_for_the_worker_and_its_probes(
    render: Callable[..., rendering.Rendered],
) -> None:
    values = {
        "workers": rendering.WORKER_VALUES["workers"]
        | {"extraEnv": [{"name": "WORKPATH_STATUS_FILE", "value": "/data/s"}]}
    }
    env = rendering.container(_worker(render, values))["env"]

    # Both read the last entry of a repeated name, as the kubelet sets it.
    assert [entry["value"] for entry in env if entry["name"] == probing.ENV_STATUS_FILE][-1] == "/data/s"
