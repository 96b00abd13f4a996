"""On the test control plane, ``RunHandle.cancel`` through the cluster target deletes the run's Routine: the operator
cancels the run on its worker, and a task awaiting it gets ``RunCancelledError`` saying the Routine was deleted; a
Routine deleted by someone else (kubectl) does the same to the runs awaited; a finished run is left as it ended."""

from __future__ import annotations

import pathlib

import kubernetes.client
import pytest

import workpath
from tests import waiting
from tests.cluster import controlplane
from tests.kube import kubeconfigs, operators, routines

EVERYTHING = ["create", "get", "list", "watch", "delete"]


async def test_cancelling_deletes_the_routine_and_the_awaiting_task_is_told(
    harness: operators.Harness,
    k8s_cluster: controlplane.Cluster,
    k8s_api: kubernetes.client.ApiClient,
    k8s_namespace: str,
    tmp_path: pathlib.Path,
    markers: pathlib.Path,
) -> None:
    kubeconfig = kubeconfigs.of_account(
        k8s_cluster, k8s_api, k8s_namespace, "canceller", verbs=EVERYTHING, folder=tmp_path
    )
    blocked = {"markers": str(markers), "gate": str(tmp_path / "gate")}
    harness.start_operator()
    harness.start_worker("w1")
    async with workpath.Client.for_cluster(k8s_namespace, kubeconfig=kubeconfig) as client:
        handle = await client.submit_with("k8s.block", blocked)
        assert handle.routine is not None
        await waiting.eventually(lambda: list(markers.glob(f"started.{handle.run_id}.*")), what="the run to start")
        status = await handle.cancel("no longer needed")
        assert (status.phase, status.reason) == ("Cancelled", "Deleted")
        assert "no longer needed" in status.message
        with pytest.raises(workpath.RunCancelledError) as cancelled:
            await handle.result(timeout=10)
        assert cancelled.value.type == "RoutineDeleted"
        assert f"its Routine {k8s_namespace}/{handle.routine.name} was deleted" in cancelled.value.message
        await waiting.eventually(
            lambda: (markers / f"cancelled.{handle.run_id}").exists(), what="the run to be cancelled on the worker"
        )
        assert routines.get(k8s_api, k8s_namespace, handle.routine.name) is None

        other = await client.submit_with("k8s.block", blocked)
        assert other.routine is not None
        await waiting.eventually(lambda: list(markers.glob(f"started.{other.run_id}.*")), what="the run to start")
        routines.delete(k8s_api, k8s_namespace, other.routine.name)  # as `kubectl delete rt NAME` does
        with pytest.raises(workpath.RunCancelledError, match="was deleted before the run finished"):
            await other.result(timeout=10)

        done = await client.submit("k8s.sized", size=1)
        assert await done == "x"
        assert (await done.cancel()).phase == "Succeeded"  # finished: left as it ended
        assert done.routine is not None and routines.get(k8s_api, k8s_namespace, done.routine.name) is not None
