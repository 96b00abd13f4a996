"""``workpath.Client.for_cluster`` on the test control plane, as a kubeconfig user whom RBAC lets use Routines: a
run becomes a Routine (named after its routine ID, the client's labels on it, its uid the run ID) that the operator
runs and the client watches to its end; many runs are created at once and awaited through one watch, which resumes
when the API server ends it; a failure raises the remote type and message; a timeout stops the waiting, not the run;
log lines come from the operator's service when its URL is given; the blocking client does the same."""

from __future__ import annotations

import asyncio
import pathlib

import kubernetes.client
import pytest

import workpath
from tests.cluster import controlplane
from tests.kube import kubeconfigs, operators, routines
from workpath.clients import clusters

RUNNER = "runner"
EVERYTHING = ["create", "get", "list", "watch", "delete"]


@pytest.fixture
def kubeconfig(
    k8s_cluster: controlplane.Cluster, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, tmp_path: pathlib.Path
) -> pathlib.Path:
    return kubeconfigs.of_account(k8s_cluster, k8s_api, k8s_namespace, RUNNER, verbs=EVERYTHING, folder=tmp_path)


async def test_a_run_is_a_routine_the_client_creates_and_watches_to_its_end(
    harness: operators.Harness, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str, kubeconfig: pathlib.Path
) -> None:
    operator = harness.start_operator()
    harness.start_worker("w1", modules=[operators.WORKLOAD, "examples.reports"])
    url = f"http://127.0.0.1:{operator.port}"
    client = workpath.Client.for_cluster(k8s_namespace, kubeconfig=kubeconfig, labels={"team": "qa"}, service_url=url)
    async with client:
        handle = await client.submit("k8s.sized", size=3)
        assert await handle == "xxx"
        assert handle.routine is not None and handle.routine.namespace == k8s_namespace
        assert handle.routine.name.startswith("k8s.sized-")
        status = await handle.status()
        assert (status.phase, status.result, status.routine_id, status.worker) == (
            "Succeeded",
            "xxx",
            "k8s.sized",
            "w1",
        )
        assert await client.get(handle.routine.name).result(timeout=10) == "xxx"  # by name, as kubectl shows it
        assert await client.get(handle.run_id).result(timeout=10) == "xxx"

        report = await client.submit("reports.build", month="2026-10")
        assert (await report)["parts"] == 4
        lines = [line.message async for line in report.logs()]
        assert lines == ["building report", "report built"]

    routine = routines.get(k8s_api, k8s_namespace, handle.routine.name)
    assert routine is not None and routine["metadata"]["uid"] == handle.run_id
    assert routine["metadata"]["labels"] == {"team": "qa"}
    assert {field["manager"] for field in routine["metadata"]["managedFields"]} >= {"workpath-client"}


async def test_many_runs_are_created_at_once_and_awaited_through_one_watch(
    harness: operators.Harness, k8s_namespace: str, kubeconfig: pathlib.Path
) -> None:
    harness.start_operator()
    harness.start_worker("w1", slots=20)
    target = clusters.ClusterTarget(k8s_namespace, kubeconfig=kubeconfig)
    async with workpath.Client(target) as client:
        handles = await client.submit_many(client.spec("k8s.sized", {"size": n % 7}) for n in range(120))
        assert len({handle.run_id for handle in handles}) == 120
        assert await client.results(handles) == ["x" * (n % 7) for n in range(120)]
        assert target.watch.watches == 1


async def test_a_failed_run_raises_its_type_and_message_and_a_timeout_leaves_the_run_going(
    harness: operators.Harness, k8s_namespace: str, kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    harness.start_operator()
    harness.start_worker("w1")
    async with workpath.Client.for_cluster(k8s_namespace, kubeconfig=kubeconfig) as client:
        with pytest.raises(workpath.RunFailedError) as failed:
            await client.run("k8s.broken")
        assert (failed.value.type, failed.value.message) == ("ValueError", "this input can never work")
        assert failed.value.routine_id == "k8s.broken" and not failed.value.retryable

        handle = await client.submit("k8s.nap", markers=str(tmp_path), seconds=1.5)
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.2)
        waiter = asyncio.create_task(handle.result())
        abandoned = asyncio.create_task(handle.result())
        await asyncio.sleep(0.05)
        abandoned.cancel()  # one waiter gives up: the other, and the run, go on
        async with asyncio.timeout(30):
            assert await waiter == 1
        assert (await handle.status()).phase == "Succeeded"


async def test_an_await_outlives_the_watches_the_api_server_ends(
    harness: operators.Harness, k8s_namespace: str, kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    harness.start_operator()
    harness.start_worker("w1")
    target = clusters.ClusterTarget(k8s_namespace, kubeconfig=kubeconfig, watch_seconds=1)
    async with workpath.Client(target) as client:
        watch = target.watch
        assert await client.run_with("k8s.nap", {"markers": str(tmp_path), "seconds": 3.0}, timeout=30) == 1
    assert watch.watches >= 3  # each ended after a second, and was resumed


def test_the_blocking_client_runs_routines_on_the_cluster(
    harness: operators.Harness, k8s_namespace: str, kubeconfig: pathlib.Path
) -> None:
    harness.start_operator()
    harness.start_worker("w1")
    with workpath.SyncClient.for_cluster(k8s_namespace, kubeconfig=kubeconfig) as client:
        assert client.run("k8s.sized", size=2) == "xx"
        handle = client.submit("k8s.flaky", failures=0)
        assert handle.result(timeout=30) == 1
        assert handle.status().phase == "Succeeded"
        handles = client.submit_many(workpath.Client.spec("k8s.sized", {"size": n}) for n in range(5))
        assert [h.result(timeout=30) for h in handles] == ["x" * n for n in range(5)]
        with pytest.raises(workpath.RunFailedError, match="ValueError: this input can never work"):
            client.run("k8s.broken")
