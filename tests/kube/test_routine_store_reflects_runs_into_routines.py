"""The Kubernetes run store against a fake API: a burst of changes becomes one status write, a sub-routine's
Routine is created (owned by its parent) before its status is written, a Routine found gone cancels its run, a
failing API server is retried, and a finished Routine is deleted after its TTL."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import scrapes, waiting
from workpath import directives
from workpath_operator.kube import clients, resources, routine_store, settings
from workpath_operator.service import measures, runs


class FakeApi:
    """Routines in memory, with the calls the store makes recorded in order."""

    def __init__(self) -> None:
        self.routines: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.failures: collections.deque[clients.ApiError] = collections.deque()

    def add(self, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        body = {
            "metadata": {"name": name, "namespace": "jobs", "uid": str(uuid.uuid4()), "generation": 1, **metadata},
            "spec": spec,
        }
        self.routines["jobs", name] = body
        return body

    def _fail(self, method: str) -> None:
        if self.failures:
            raise self.failures.popleft()

    async def list_routines(self, namespace: str | None) -> list[dict[str, Any]]:
        return list(self.routines.values())

    async def create_routine(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body["metadata"]["name"]))
        self._fail("POST")
        created = body | {"metadata": body["metadata"] | {"uid": str(uuid.uuid4()), "generation": 1}}
        self.routines[namespace, body["metadata"]["name"]] = created
        return created

    async def get_routine(self, namespace: str, name: str) -> dict[str, Any]:
        return self.routines[namespace, name]

    async def replace_routine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("status", name))
        self._fail("PATCH")
        if (namespace, name) not in self.routines:
            raise clients.ApiError(404, "NotFound", "gone", method="PATCH", path=name)
        self.routines[namespace, name]["status"] = status

    async def delete_routine(self, namespace: str, name: str, *, uid: str) -> None:
        self.calls.append(("delete", name))
        self.routines.pop((namespace, name), None)

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        pass


SETTINGS = settings.OperatorSettings(namespaces=("jobs",), status_linger=0.0)

# "Nothing more is written" and the retry of a failed write are waited for on the loop's fake clock.
pytestmark = pytest.mark.looptime


@pytest.fixture
async def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def vanished() -> list[tuple[str, str]]:
    """(run ID, reason) of each run the store found without its Routine."""
    return []


@pytest.fixture
async def store(api: FakeApi, vanished: list[tuple[str, str]]) -> AsyncIterator[routine_store.RoutineStore]:
    store = routine_store.RoutineStore(
        api,  # type: ignore[arg-type]
        settings=SETTINGS,
        on_vanished=lambda run_id, reason: vanished.append((run_id, reason)),
    )
    await store.start()
    yield store
    await store.close()


def submitted(store: routine_store.RoutineStore, body: dict[str, Any]) -> runs.Run:
    store.expect(body)
    run = runs.Run(run_id=resources.run_id_of(body), spec=resources.spec_of(body), created_at=directives.now())
    store.run_changed(run)
    return run


async def test_a_burst_of_changes_is_one_status_write(api: FakeApi, store: routine_store.RoutineStore) -> None:
    body = api.add("report", {"routineID": "reports.build"})
    run = submitted(store, body)
    for reason in ("Dispatched", "Started"):
        run.reason = reason
        store.run_changed(run)
    run.phase, run.attempt, run.worker = runs.Phase.RUNNING, 1, directives.WorkerID("w")
    store.run_changed(run)

    await waiting.eventually(lambda: api.calls)
    await asyncio.sleep(0.05)
    assert api.calls == [("status", "report")]
    assert body["status"]["phase"] == "Running"
    assert body["status"]["runID"] == body["metadata"]["uid"]
    board = measures.Board()
    store.add_measures(board)
    metrics = scrapes.values(scrapes.page(board))
    assert metrics['workpath_routine_writes_total{kind="status"}'] == 1
    assert metrics["workpath_routine_writes_pending"] == 0
    # The burst was one write: one change -> written observed, within the test's wait.
    assert metrics["workpath_status_write_latency_seconds_count"] == 1
    assert metrics['workpath_status_write_latency_seconds_bucket{le="5.0"}'] == 1


async def test_a_sub_routine_gets_a_routine_owned_by_its_parent_before_its_status(
    api: FakeApi, store: routine_store.RoutineStore
) -> None:
    parent_body = api.add("report", {"routineID": "reports.build"})
    parent = submitted(store, parent_body)
    child = runs.Run(
        run_id=runs.new_run_id(),
        spec=runs.RunSpec.model_validate({"routineID": "reports.part"}),
        created_at=directives.now(),
        parent_run_id=parent.run_id,
        root_run_id=parent.run_id,
        request_id=directives.RequestID("r-1"),
        parent_attempt=1,
    )
    store.run_changed(child)

    name = resources.child_name("report", child.run_id)
    await waiting.eventually(lambda: ("status", name) in api.calls)
    assert api.calls.index(("create", name)) < api.calls.index(("status", name))
    created = api.routines["jobs", name]
    assert created["metadata"]["ownerReferences"][0]["uid"] == parent_body["metadata"]["uid"]
    assert created["metadata"]["labels"][resources.RUN_ID_LABEL] == child.run_id
    assert created["status"]["parentRunID"] == parent.run_id


async def test_a_routine_found_gone_cancels_its_run(
    api: FakeApi, store: routine_store.RoutineStore, vanished: list[tuple[str, str]]
) -> None:
    body = api.add("report", {"routineID": "reports.build"})
    del api.routines["jobs", "report"]  # deleted before the operator wrote anything
    run = submitted(store, body)

    await waiting.eventually(lambda: vanished)
    assert vanished == [(run.run_id, "its Routine jobs/report is gone")]
    assert not store.knows(run.run_id)


async def test_a_failing_api_server_is_retried(api: FakeApi, store: routine_store.RoutineStore) -> None:
    api.failures.append(clients.ApiError(503, "ServiceUnavailable", "busy", method="PATCH", path="report"))
    body = api.add("report", {"routineID": "reports.build"})
    submitted(store, body)

    await waiting.eventually(lambda: "status" in body)
    assert api.calls == [("status", "report"), ("status", "report")]


async def test_a_finished_routine_is_written_once_more_then_deleted_after_its_ttl(
    api: FakeApi, store: routine_store.RoutineStore
) -> None:
    body = api.add("report", {"routineID": "reports.build", "ttlSecondsAfterFinished": 0})
    run = submitted(store, body)
    await waiting.eventually(lambda: "status" in body)
    run.phase, run.reason, run.completed_at = runs.Phase.SUCCEEDED, "Succeeded", directives.now()
    store.run_changed(run)

    await waiting.eventually(lambda: ("delete", "report") in api.calls)
    assert [call for call in api.calls if call[0] == "status"] == [("status", "report")] * 2
    assert not store.knows(run.run_id)


async def test_loading_restores_runs_and_fails_a_routine_that_cannot_run(api: FakeApi) -> None:
    running = api.add("running", {"routineID": "reports.build"})
    running["status"] = {
        "phase": "Running",
        "runID": running["metadata"]["uid"],
        "attempt": 1,
        "worker": "w",
        "createdAt": "2026-10-01T12:00:00.000000Z",
        "startedAt": "2026-10-01T12:00:01.000000Z",
    }
    invalid = api.add("invalid", {"routineID": "reports.build", "experimental": True})
    store = routine_store.RoutineStore(api, settings=SETTINGS, on_vanished=lambda *_: None)  # type: ignore[arg-type]
    await store.start()
    try:
        (restored,) = await store.load()
        assert (restored.run_id, restored.phase, restored.worker) == (
            running["metadata"]["uid"],
            runs.Phase.RUNNING,
            "w",
        )
        await waiting.eventually(lambda: "status" in invalid)
        assert invalid["status"]["phase"] == "Failed"
        assert invalid["status"]["error"]["type"] == "InvalidRoutineError"
    finally:
        await store.close()
