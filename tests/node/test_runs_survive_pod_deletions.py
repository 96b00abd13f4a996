"""Runs survive the loss of real pods: a worker pod deleted mid-run hands its run back and another pod runs it to
Succeeded, once; the operator's leader pod deleted while Routines run and wait loses none of them and runs none
twice (the workers' own log lines count the executions)."""

from __future__ import annotations

from typing import Any

import kubernetes.client

from tests.cluster import manifests, models, waiting
from tests.node import deploying


def _phase(routines: kubernetes.client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = deploying.routine(routines, namespace, name).get("status", {})
    return status


def _succeeded_events(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> int:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return sum(event.count or 1 for event in events if event.reason == "Succeeded")


def test_worker_pod_deleted_mid_run_hands_the_run_to_another_pod(
    node_release: deploying.Release,
    core: kubernetes.client.CoreV1Api,
    routines: kubernetes.client.CustomObjectsApi,
) -> None:
    namespace, key = node_release.namespace, "interrupted"
    deploying.create_sleep(routines, namespace, key, seconds=15)
    status = waiting.wait_for(
        lambda: (s := _phase(routines, namespace, key)).get("phase") == "Running" and s.get("worker") and s,
        timeout=60,
        what=f"Routine {key} to run on a worker",
    )
    victim = status["worker"]
    waiting.wait_for(
        lambda: "sleep started" in deploying.pod_logs(core, namespace, victim),
        timeout=30,
        what=f"the run to start in pod {victim}",
    )

    core.delete_namespaced_pod(victim, namespace)  # SIGTERM: the worker drains for 1 s, then hands the run back.
    final = deploying.wait_finished(routines, namespace, key, timeout=120)["status"]

    assert final["phase"] == "Succeeded", final
    assert final["worker"] != victim
    assert final["result"] == {"key": key, "slept": 15}
    survivors = deploying.ready_pods(core, node_release, "worker", count=2, timeout=120)
    assert victim not in {models.name(pod) for pod in survivors}
    assert deploying.count_lines(deploying.worker_logs(core, node_release), "sleep finished")[key] == 1
    assert _succeeded_events(core, namespace, key) == 1


def test_operator_pod_deleted_mid_load_loses_nothing_and_runs_nothing_twice(
    node_release: deploying.Release,
    core: kubernetes.client.CoreV1Api,
    routines: kubernetes.client.CustomObjectsApi,
) -> None:
    namespace = node_release.namespace
    keys = [f"load-{n}" for n in range(8)]  # 8 runs of 4 s on 2 workers x 2 slots: some run, some wait.
    for key in keys:
        deploying.create_sleep(routines, namespace, key, seconds=4)
    waiting.wait_for(
        lambda: any(_phase(routines, namespace, key).get("phase") == "Running" for key in keys),
        timeout=60,
        what="the first runs to start",
    )
    leader = deploying.leader_pod(core, node_release)

    core.delete_namespaced_pod(models.name(leader), namespace)
    finals = {key: deploying.wait_finished(routines, namespace, key, timeout=180)["status"] for key in keys}

    assert {key: status["phase"] for key, status in finals.items()} == dict.fromkeys(keys, "Succeeded")
    logs = deploying.worker_logs(core, node_release)
    started, finished = (deploying.count_lines(logs, message) for message in ("sleep started", "sleep finished"))
    assert {key: started[key] for key in keys} == dict.fromkeys(keys, 1)
    assert {key: finished[key] for key in keys} == dict.fromkeys(keys, 1)
    new_leader = deploying.leader_pod(core, node_release, timeout=120)
    assert models.name(new_leader) != models.name(leader)
    listed = models.json_object(
        routines.list_namespaced_custom_object(manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES)
    )
    assert {item["metadata"]["name"] for item in listed["items"]} >= set(keys)
