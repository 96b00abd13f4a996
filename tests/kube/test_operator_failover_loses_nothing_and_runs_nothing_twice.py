"""Operator HA on the test control plane: two operator replicas elect a leader on a Lease (default timing), each with
a pod standing in for its own (:mod:`tests.kube.operator_pods`), and the workers reach the ready replica whose pod
carries the leader label through a stand-in for the chart's Service (:mod:`tests.kube.routing`). Both replicas are
ready; only the leader's pod is labelled. 300 Routines of a 1-second routine are in flight, some done, some running,
the rest pending, when the leader goes:

- SIGKILLed: its pod keeps the label, but it is not ready, so no worker reaches it; the standby takes the Lease once
  it expires, labels its pod, rebuilds from the Routines and the workers' `v1.ready` (as after a restart), and every
  Routine Succeeded exactly once (one `started` marker per run): a worker forgets a final report only once the
  leader has written the Routine's status, so none is Running on a worker that dropped it;
- SIGTERMed: the leader stops serving, releases the Lease (its holder cleared) and takes the label off its pod, and
  the standby leads at its next look; again every Routine Succeeded exactly once.

Each test prints its figures (``pytest -s``): seconds from the leader's end to the new leader's Lease, its label,
the endpoint switch (its pod labelled and its directive service ready: what the Service would route to) and first
dispatch (the first routine started after it took the Lease), and the runs lost or started twice.
"""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from tests.cluster import processes, waiting
from tests.kube import leases, operator_pods, operators, routines, routing

ROUTINES = 300
WORKERS = 4
SLOTS = 10
SECONDS = 1.0
#: Done before the leader goes: the rest are running or pending.
DONE_BEFORE = 80
#: The goals, at the operator's default election timing: a SIGKILLed leader replaced, and the first run dispatched by
#: its successor, within 10 s; a stopped one within 2 s of its Lease being released.
KILLED_GOAL = 10.0
STOPPED_GOAL = 2.0


def _electing(identity: str) -> tuple[str, ...]:
    return ("--leader-elect", "--leader-identity", identity)


class Replicas:
    """Two electing operators, each on its own port with a pod standing in for its own, and the workers, behind the
    router on the harness's port, which selects the ready one whose pod carries the leader label."""

    def __init__(self, harness: operators.Harness, core: kubernetes.client.CoreV1Api) -> None:
        self.core = core
        self.namespace = harness.namespace
        self.pods: dict[int, str] = {}
        self.ports = (processes.free_port(), processes.free_port())
        self.router = routing.ReadyRouter(harness.port, self.ports, selected=self.labelled)
        self.router.__enter__()
        self.leader = self._start(harness, "a", self.ports[0])
        waiting.wait_for(lambda: self.endpoint() == self.leader.port, timeout=30, what="a to lead, labelled")
        self.standby = self._start(harness, "b", self.ports[1])
        for number in range(WORKERS):
            harness.start_worker(f"w{number}", slots=SLOTS)

    def _start(self, harness: operators.Harness, identity: str, port: int) -> operators.OperatorProcess:
        self.pods[port] = f"operator-{identity}"
        operator_pods.create(self.core, self.namespace, self.pods[port])
        env = operator_pods.env(self.namespace, self.pods[port])
        return harness.start_operator(port=port, args=_electing(identity), env=env)  # ready: leading or not

    def labelled(self, port: int) -> bool:
        return operator_pods.labelled(self.core, self.namespace, self.pods[port])

    def endpoint(self) -> int | None:
        """The port the chart's Service would route to now: the ready replica whose pod carries the label (None when
        none does; both would be a bug)."""
        selected = [port for port in self.ports if routing.answers(port, "/readyz") == 200 and self.labelled(port)]
        assert len(selected) <= 1, f"two replicas are ready with the leader label: {selected}"
        return selected[0] if selected else None

    def close(self) -> None:
        self.router.__exit__(None, None, None)


@pytest.fixture
def replicas(harness: operators.Harness, k8s_api: kubernetes.client.ApiClient) -> Iterator[Replicas]:
    running = Replicas(harness, kubernetes.client.CoreV1Api(k8s_api))
    try:
        yield running
    finally:
        running.close()


def _create_routines(client: kubernetes.client.ApiClient, namespace: str, markers: pathlib.Path) -> None:
    params = {"markers": str(markers), "seconds": SECONDS}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda n: routines.create(client, namespace, f"nap-{n:03}", routineID="k8s.nap", params=params),
                range(ROUTINES),
            )
        )


def _in_flight(markers: pathlib.Path) -> None:
    waiting.wait_for(
        lambda: len(list(markers.glob("done.*"))) >= DONE_BEFORE,
        timeout=60,
        what=f"{DONE_BEFORE} routines to be done",
    )


def _all_finished(client: kubernetes.client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    def finished() -> list[dict[str, Any]] | None:
        found = routines.listed(client, namespace)
        done = [r for r in found if routines.phase(r) in routines.FINISHED]
        return found if len(done) == ROUTINES else None

    return waiting.wait_for(finished, timeout=120, interval=0.5, what=f"all {ROUTINES} Routines to finish")


def _switched_after(replicas: Replicas, operator: operators.OperatorProcess) -> float:
    """When the stand-in Service's endpoint became ``operator``."""
    waiting.wait_for(
        lambda: replicas.endpoint() == operator.port, timeout=60, interval=0.02, what="the endpoint to move"
    )
    return time.time()


def _labelled_after(replicas: Replicas, operator: operators.OperatorProcess) -> float:
    waiting.wait_for(
        lambda: replicas.labelled(operator.port), timeout=60, interval=0.02, what=f"{operator.name}'s leader label"
    )
    return time.time()


def _first_started_after(markers: pathlib.Path, moment: float) -> float:
    return min(m.stat().st_mtime for m in markers.glob("started.*") if m.stat().st_mtime >= moment)


def _runs_lost_and_twice(finished: list[dict[str, Any]], markers: pathlib.Path) -> dict[str, list[str]]:
    """The Routines that did not succeed or never started, and the runs started more than once."""
    starts = Counter(m.name.split(".")[1] for m in markers.glob("started.*"))
    run_ids = {r["status"]["runID"] for r in finished}
    return {
        "lost": sorted(r["metadata"]["name"] for r in finished if routines.phase(r) != "Succeeded")
        + sorted(run for run in run_ids if starts[run] == 0),
        "run_twice": sorted(run for run in run_ids if starts[run] > 1),
    }


def _report(title: str, figures: dict[str, Any], outcome: dict[str, list[str]]) -> None:
    print(f"\nFIGURES {title}: {json.dumps(figures | {key: len(runs) for key, runs in outcome.items()})}")


def _check_each_ran_once(finished: list[dict[str, Any]], markers: pathlib.Path, outcome: dict[str, list[str]]) -> None:
    """Every Routine Succeeded on its first attempt, started once, done once."""
    assert not outcome["lost"], f"lost: {outcome['lost']}"
    assert not outcome["run_twice"], f"started more than once: {outcome['run_twice']}"
    assert {r["status"]["attempt"] for r in finished} == {1}
    assert all((markers / f"done.{r['status']['runID']}.1").exists() for r in finished)


def test_a_sigkilled_leader_is_replaced_and_every_routine_runs_once(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    replicas: Replicas,
    markers: pathlib.Path,
) -> None:
    # Both ready; the standby is not labelled, so the Service would send nothing to it.
    assert routing.answers(replicas.standby.port, "/readyz") == 200
    assert not replicas.labelled(replicas.standby.port)
    assert replicas.endpoint() == replicas.leader.port
    assert leases.holder(k8s_api, k8s_namespace) == "a"
    _create_routines(k8s_api, k8s_namespace, markers)
    _in_flight(markers)

    killed = time.time()
    replicas.leader.kill()
    labelled = _labelled_after(replicas, replicas.standby)
    switched = _switched_after(replicas, replicas.standby)
    finished = _all_finished(k8s_api, k8s_namespace)

    assert leases.holder(k8s_api, k8s_namespace) == "b"
    assert replicas.labelled(replicas.leader.port)  # a killed leader keeps its label: not ready, it is not selected
    acquired = leases.acquired_at(k8s_api, k8s_namespace)
    first_dispatch = _first_started_after(markers, acquired)
    figures = {
        "killed_to_lease": round(acquired - killed, 2),
        "killed_to_labelled": round(labelled - killed, 2),
        "killed_to_endpoint": round(switched - killed, 2),
        "killed_to_first_dispatch": round(first_dispatch - killed, 2),
    }
    outcome = _runs_lost_and_twice(finished, markers)
    _report("sigkill", figures, outcome)
    assert figures["killed_to_first_dispatch"] <= KILLED_GOAL, figures
    _check_each_ran_once(finished, markers, outcome)


def test_a_stopped_leader_releases_the_lease_and_the_standby_leads_at_once(
    k8s_namespace: str,
    k8s_api: kubernetes.client.ApiClient,
    replicas: Replicas,
    markers: pathlib.Path,
) -> None:
    _create_routines(k8s_api, k8s_namespace, markers)
    _in_flight(markers)

    with leases.LeaseWatch(k8s_api, k8s_namespace) as watch:
        stopped = time.time()
        replicas.leader.popen.send_signal(signal.SIGTERM)
        labelled = _labelled_after(replicas, replicas.standby)
        switched = _switched_after(replicas, replicas.standby)
        assert replicas.leader.popen.wait(timeout=30) == 0
        finished = _all_finished(k8s_api, k8s_namespace)

    assert not replicas.labelled(replicas.leader.port)  # taken off once the Lease was released
    released = watch.first("", after=stopped)
    taken = watch.first("b", after=stopped)
    assert released is not None, f"the Lease was not released: {watch.seen}"
    assert taken is not None and taken.at >= released.at, watch.seen
    first_dispatch = _first_started_after(markers, leases.acquired_at(k8s_api, k8s_namespace))
    figures = {
        "stopped_to_released": round(released.at - stopped, 2),
        "released_to_lease": round(taken.at - released.at, 2),
        "stopped_to_lease": round(taken.at - stopped, 2),
        "stopped_to_labelled": round(labelled - stopped, 2),
        "stopped_to_endpoint": round(switched - stopped, 2),
        "stopped_to_first_dispatch": round(first_dispatch - stopped, 2),
    }
    outcome = _runs_lost_and_twice(finished, markers)
    _report("sigterm", figures, outcome)
    assert figures["released_to_lease"] <= STOPPED_GOAL, figures
    _check_each_ran_once(finished, markers, outcome)
