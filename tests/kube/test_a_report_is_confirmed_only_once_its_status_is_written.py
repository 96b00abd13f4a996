"""In the operator, a worker's final report is confirmed (``check_pulse.received``, which lets the worker forget
it) only once the Routine's status that it changed is written: an operator killed in between would otherwise find
the Routine Running on a worker that no longer holds the run, and run it again. A write held back, or retried after
a transient error, holds the confirmation back; a Routine found gone (404) does not. A sub-routine whose Routine
waits for its parent's to be created is not written (so not confirmed) until then, unless that creation fails for
good."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import waiting
from tests.service import fakes
from workpath import connecting, directives
from workpath_operator.kube import clients, resources, routine_store, settings
from workpath_operator.service import dispatching, heartbeating, runs
from workpath_operator.service import settings as service_settings

# Retries of failed writes wait on the loop's fake clock.
pytestmark = pytest.mark.looptime


class HeldApi:
    """Routines in memory; writes wait while ``held`` is clear, and the queued failures come first."""

    def __init__(self) -> None:
        self.routines: dict[str, dict[str, Any]] = {}
        self.statuses: list[tuple[str, str]] = []
        self.failures: collections.deque[clients.ApiError] = collections.deque()
        self.open = asyncio.Event()
        self.open.set()

    def add(self, name: str) -> dict[str, Any]:
        body = {
            "metadata": {"name": name, "namespace": "jobs", "uid": str(uuid.uuid4()), "generation": 1},
            "spec": {"routineID": "a.b"},
        }
        self.routines[name] = body
        return body

    async def _write(self, method: str, name: str) -> None:
        await self.open.wait()
        if self.failures:
            raise self.failures.popleft()
        if name not in self.routines and method == "PATCH":
            raise clients.ApiError(404, "NotFound", "gone", method=method, path=name)

    async def replace_routine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self._write("PATCH", name)
        self.routines[name]["status"] = status
        self.statuses.append((name, status["phase"]))

    async def create_routine(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._write("POST", body["metadata"]["name"])
        created = body | {"metadata": body["metadata"] | {"uid": str(uuid.uuid4()), "generation": 1}}
        self.routines[body["metadata"]["name"]] = created
        return created

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        pass


class Operator:
    """The Routine store, a dispatcher and its heartbeat on the fake API, and a fake worker ``w1``."""

    def __init__(self, api: HeldApi, store: routine_store.RoutineStore) -> None:
        self.api = api
        self.store = store
        config = service_settings.ServiceSettings(heartbeat_misses=100)
        self.dispatcher = dispatching.Dispatcher(settings=config, observer=store)
        self.heartbeat = heartbeating.Heartbeat(
            roster=self.dispatcher.roster, store=store, settings=config, close=lambda ws, why: None
        )
        self.workers = fakes.FakeWorkers(self.dispatcher)
        self.worker = self.workers.attach("w1")
        #: What the worker keeps until confirmed, as the real worker does.
        self.replay = connecting.ReplayBuffer()

    async def run_to_the_end(self, name: str) -> runs.Run:
        """A Routine's run, started and completed by the worker: frames 1 and 2 of its connection."""
        body = self.api.add(name)
        self.store.expect(body)
        run = self.dispatcher.submit(resources.spec_of(body), run_id=resources.run_id_of(body))
        (start,) = await self.workers.starts(self.worker)
        await asyncio.wait_for(self.store.barrier(), 5.0)  # Running is written
        self.api.open.clear()  # from here on, writes wait
        self.replay.add(1, run.run_id, start.attempt, "starting", final=False)
        self.replay.add(2, run.run_id, start.attempt, "completed", final=True)
        self.worker.frame_received()
        self.worker.frame_received()
        self.workers.complete(self.worker, start)
        assert run.phase is runs.Phase.SUCCEEDED
        return run

    async def pulse(self) -> None:
        """One heartbeat round; the worker takes the pulse check and answers it."""
        self.heartbeat.check_pulses()
        for check in await self.workers.sent(self.worker):
            if isinstance(check, directives.CheckPulse):
                self.replay.confirm(check.received)
                self.worker.frame_received()
                self.heartbeat.pulse_given(self.worker, directives.GivePulse(id=check.id), 0)

    async def close(self) -> None:
        self.api.open.set()
        await self.workers.close()


@pytest.fixture
async def operator() -> AsyncIterator[Operator]:
    api = HeldApi()
    store = routine_store.RoutineStore(
        api,  # type: ignore[arg-type]
        settings=settings.OperatorSettings(namespaces=("jobs",), status_linger=0.0),
        on_vanished=lambda run_id, reason: None,
    )
    await store.start()
    operator = Operator(api, store)
    yield operator
    await operator.close()
    await store.close()


async def test_a_final_report_is_not_confirmed_while_its_status_write_is_pending(operator: Operator) -> None:
    run = await operator.run_to_the_end("nap")
    for _ in range(3):
        await operator.pulse()
        assert run.run_id in operator.replay.held, "confirmed while the Routine still says Running"
    operator.api.open.set()
    await waiting.eventually(lambda: ("nap", "Succeeded") in operator.api.statuses, what="Succeeded to be written")
    await asyncio.sleep(0)
    await operator.pulse()
    assert not operator.replay.held
    assert not operator.replay


async def test_a_write_retried_after_a_transient_error_holds_the_confirmation_back(operator: Operator) -> None:
    run = await operator.run_to_the_end("nap")
    operator.api.failures.append(clients.ApiError(503, "Unavailable", "busy", method="PATCH", path="nap"))
    operator.api.open.set()
    await waiting.eventually(lambda: not operator.api.failures, what="the write to fail")
    await operator.pulse()
    assert run.run_id in operator.replay.held
    await waiting.eventually(lambda: ("nap", "Succeeded") in operator.api.statuses, what="the retry")
    await asyncio.sleep(0)
    await operator.pulse()
    assert not operator.replay.held


async def test_a_routine_found_gone_lets_the_report_be_confirmed(operator: Operator) -> None:
    run = await operator.run_to_the_end("nap")
    del operator.api.routines["nap"]  # deleted while nobody watched: the write is answered 404
    operator.api.open.set()
    await asyncio.wait_for(operator.store.barrier(), 5.0)
    await operator.pulse()
    assert run.run_id not in operator.replay.held


def a_child(parent: runs.Run) -> runs.Run:
    return runs.Run(
        run_id=runs.new_run_id(),
        spec=runs.RunSpec.model_validate({"routineID": "a.part"}),
        created_at=directives.now(),
        parent_run_id=parent.run_id,
        root_run_id=parent.root_run_id or parent.run_id,
        request_id=directives.RequestID(f"r-{uuid.uuid4()}"),
        parent_attempt=1,
    )


async def test_a_sub_routine_waiting_for_its_parents_routine_holds_the_barrier(operator: Operator) -> None:
    store, api = operator.store, operator.api
    body = api.add("top")
    store.expect(body)
    top = runs.Run(run_id=resources.run_id_of(body), spec=resources.spec_of(body), created_at=directives.now())
    store.run_changed(top)
    await asyncio.wait_for(store.barrier(), 5.0)
    child = a_child(top)
    grandchild = a_child(child)
    api.open.clear()  # the child's Routine is being created
    store.run_changed(child)
    store.run_changed(grandchild)
    barrier = store.barrier()
    await asyncio.sleep(1.0)
    assert not barrier.done()
    api.open.set()
    await asyncio.wait_for(barrier, 5.0)
    assert resources.child_name(resources.child_name("top", child.run_id), grandchild.run_id) in api.routines


async def test_a_parent_routine_that_cannot_be_created_does_not_hold_the_barrier(operator: Operator) -> None:
    store, api = operator.store, operator.api
    body = api.add("top")
    store.expect(body)
    top = runs.Run(run_id=resources.run_id_of(body), spec=resources.spec_of(body), created_at=directives.now())
    store.run_changed(top)
    await asyncio.wait_for(store.barrier(), 5.0)
    child = a_child(top)
    grandchild = a_child(child)
    api.open.clear()
    api.failures.append(clients.ApiError(422, "Invalid", "no", method="POST", path="child"))
    store.run_changed(child)
    store.run_changed(grandchild)
    barrier = store.barrier()
    api.open.set()
    await asyncio.wait_for(barrier, 5.0)
    assert len(api.routines) == 1
