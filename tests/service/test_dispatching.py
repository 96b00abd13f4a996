"""The dispatcher's matching and run state, without sockets: fake workers read what their sessions write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.service import fakes
from workpath import directives, errors
from workpath_operator.service import dispatching, runs, settings, stores

ID = directives.WorkerID


@pytest.fixture
async def dispatcher() -> dispatching.Dispatcher:
    return dispatching.Dispatcher(settings=settings.ServiceSettings(), observer=stores.MemoryRunStore())


@pytest.fixture
async def workers(dispatcher: dispatching.Dispatcher) -> AsyncIterator[fakes.FakeWorkers]:
    fleet = fakes.FakeWorkers(dispatcher)
    yield fleet
    await fleet.close()


def spec(routine: str = "a.b", **kwargs: object) -> runs.RunSpec:
    return runs.RunSpec.model_validate({"routineID": routine, **kwargs})


async def test_queued_runs_go_by_priority_then_arrival(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    low1 = dispatcher.submit(spec(priority=0))
    high = dispatcher.submit(spec(priority=5))
    low2 = dispatcher.submit(spec(priority=0))
    worker = workers.attach("w", slots=1)
    order = []
    for _ in range(3):
        (start,) = await workers.starts(worker)
        order.append(start.run_id)
        workers.complete(worker, start)
    assert order == [high.run_id, low1.run_id, low2.run_id]


async def test_a_worker_gets_no_more_runs_than_slots(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w", slots=2)
    for _ in range(3):
        dispatcher.submit(spec())
    assert len(await workers.starts(worker)) == 2
    assert dispatcher.queue_depth() == 1


async def test_routine_patterns_and_pools_decide_who_runs_what(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    reports = workers.attach("reports", slots=5, routines=("reports.*",))
    gpu = workers.attach("gpu", slots=5, routines=("*",), pool="gpu")
    build = dispatcher.submit(spec("reports.build", pool="default"))
    train = dispatcher.submit(spec("model.train", pool="gpu"))
    mail = dispatcher.submit(spec("mail.send", pool="default"))
    assert [s.run_id for s in await workers.starts(reports)] == [build.run_id]
    assert [s.run_id for s in await workers.starts(gpu)] == [train.run_id]
    assert mail.queued and dispatcher.queue_depth() == 1
    # a worker that can run it arrives later and takes it from the queue
    mailer = workers.attach("mailer", slots=1, routines=("mail.send",))
    assert [s.run_id for s in await workers.starts(mailer)] == [mail.run_id]


async def test_a_parent_waiting_on_a_child_lends_its_only_slot(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w", slots=1)
    parent = dispatcher.submit(spec("chain"))
    (start,) = await workers.starts(worker)
    dispatcher.subroutines.request(
        worker,
        directives.RequestSubroutine(
            request_id=directives.RequestID("q1"), routine_id=directives.RoutineID("leaf"), parent_run_id=start.run_id
        ),
    )
    (child_start,) = await workers.starts(worker)
    assert child_start.parent_run_id == parent.run_id
    workers.complete(worker, child_start)
    forwarded = await workers.sent(worker)
    assert any(isinstance(p, directives.RoutineCompleted) and p.request_id == "q1" for p in forwarded)
    assert parent.holds_slot and worker.busy == 1
    assert parent.children_total == 1 and parent.children_succeeded == 1


async def test_a_report_for_an_attempt_the_worker_no_longer_holds_is_refused(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    first = workers.attach("first", slots=1)
    run = dispatcher.submit(spec(retries={"limit": 0}))
    (old,) = await workers.starts(first)
    dispatcher.roster.lose(first, "went away")
    second = workers.attach("second", slots=1)
    (new,) = await workers.starts(second)
    assert new.attempt == old.attempt + 1
    late = directives.RoutineCompleted(
        run_id=old.run_id, attempt=old.attempt, result="stale", completed_at=directives.now()
    )
    with pytest.raises(errors.DirectiveError) as caught:
        workers.reports.completed(second, late, size=10)
    assert caught.value.code == directives.ErrorCode.STALE_ATTEMPT
    assert run.phase is runs.Phase.PENDING and run.result is None
    workers.complete(second, new)
    assert run.phase is runs.Phase.SUCCEEDED and run.worker == "second"


async def test_a_repeated_final_report_is_ignored(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w")
    run = dispatcher.submit(spec(params={"x": 1}))
    (start,) = await workers.starts(worker)
    workers.complete(worker, start)
    workers.complete(worker, start)  # a replay after a reconnect: no error, no change
    assert run.phase is runs.Phase.SUCCEEDED and run.result == {"x": 1}


async def test_a_retryable_failure_is_retried_as_a_new_attempt(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w")
    run = dispatcher.submit(spec(retries={"limit": 1, "backoffSeconds": 0}))
    (first,) = await workers.starts(worker)
    assert first.attempt == 1
    error = directives.ErrorInfo(type="TimeoutError", message="slow", retryable=True)
    workers.reports.failed(
        worker, directives.RoutineFailed(run_id=run.run_id, attempt=1, error=error, completed_at=directives.now())
    )
    assert run.phase is runs.Phase.PENDING and run.reason == runs.Reason.RETRYING
    retry = await workers.next_starts(worker)
    assert retry[0].attempt == 2
    workers.reports.failed(
        worker, directives.RoutineFailed(run_id=run.run_id, attempt=2, error=error, completed_at=directives.now())
    )
    assert run.phase is runs.Phase.FAILED and run.error == error


async def test_a_run_no_worker_can_take_fails_after_its_timeout(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    workers.attach("w", routines=("other.*",))
    run = dispatcher.submit(spec("nobody.runs.this", timeoutSeconds=0.05))
    assert run.phase is runs.Phase.PENDING and dispatcher.queue_depth() == 1
    finished = await asyncio.wait_for(dispatcher.wait_finished(run), 2)
    assert finished.phase is runs.Phase.FAILED
    assert finished.error is not None and finished.error.type == directives.ErrorType.QUEUE_TIMEOUT
    assert "nobody.runs.this" in finished.error.message and dispatcher.queue_depth() == 0


async def test_cancelling_a_parent_cancels_its_children_on_their_workers(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w", slots=2)
    parent = dispatcher.submit(spec("parent"))
    (start,) = await workers.starts(worker)
    dispatcher.subroutines.request(
        worker,
        directives.RequestSubroutine(
            request_id=directives.RequestID("q"), routine_id=directives.RoutineID("child"), parent_run_id=start.run_id
        ),
    )
    (child,) = await workers.starts(worker)
    assert dispatcher.cancel(parent.run_id, reason="deleted")
    cancels = {p.run_id for p in await workers.sent(worker) if isinstance(p, directives.CancelRoutine)}
    assert cancels == {parent.run_id, child.run_id}
    assert parent.phase is runs.Phase.CANCELLED
    assert dispatcher.get(child.run_id) is not None
    assert dispatcher.get(child.run_id).phase is runs.Phase.CANCELLED  # type: ignore[union-attr]
    assert worker.busy == 0


def restored(phase: runs.Phase, *, worker: str | None, attempt: int) -> runs.Run:
    return runs.Run(
        run_id=runs.new_run_id(),
        spec=spec(),
        created_at=directives.now(),
        phase=phase,
        worker=ID(worker) if worker else None,
        attempt=attempt,
    )


async def test_after_a_restart_a_run_still_on_its_worker_is_kept_not_started_again(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    running = restored(runs.Phase.RUNNING, worker="w", attempt=1)
    dispatcher.restore([running])
    worker = workers.attach("w", slots=1, running=[(running, 1)])
    assert await workers.starts(worker) == []
    assert worker.runs == {running.run_id: running} and worker.busy == 1
    workers.reports.completed(
        worker,
        directives.RoutineCompleted(run_id=running.run_id, attempt=1, result="kept", completed_at=directives.now()),
        size=10,
    )
    assert (running.phase, running.attempt, running.result) == (runs.Phase.SUCCEEDED, 1, "kept")


async def test_after_a_restart_a_dispatch_that_was_not_recorded_is_adopted(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    pending = restored(runs.Phase.PENDING, worker=None, attempt=0)
    dispatcher.restore([pending])
    other = workers.attach("other", slots=5)
    assert other.runs == {}  # settling: nothing is dispatched while workers may still report it
    worker = workers.attach("w", slots=1, running=[(pending, 1)])
    assert (pending.worker, pending.attempt, pending.phase) == ("w", 1, runs.Phase.RUNNING)
    assert dispatcher.queue_depth() == 0
    assert await workers.starts(worker) == [] and await workers.starts(other) == []


async def test_restored_runs_are_dispatched_once_their_workers_had_a_chance_to_reconnect() -> None:
    dispatcher = dispatching.Dispatcher(
        settings=settings.ServiceSettings(settle_seconds=0.05), observer=stores.MemoryRunStore()
    )
    workers = fakes.FakeWorkers(dispatcher)
    try:
        pending = restored(runs.Phase.PENDING, worker=None, attempt=0)
        dispatcher.restore([pending])
        worker = workers.attach("fresh", slots=1)
        assert worker.runs == {}  # not at once: the worker that may hold it had no chance to reconnect yet
        dispatched = await workers.next_starts(worker)
        assert dispatched[0].run_id == pending.run_id and dispatched[0].attempt == 1
    finally:
        await workers.close()


async def test_a_worker_reporting_a_run_the_service_does_not_know_is_told_to_cancel_it(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    ghost = restored(runs.Phase.RUNNING, worker=None, attempt=3)  # never given to the dispatcher
    worker = workers.attach("w", slots=1, running=[(ghost, 3)])
    cancels = [p for p in await workers.sent(worker) if isinstance(p, directives.CancelRoutine)]
    assert [c.run_id for c in cancels] == [ghost.run_id]
    assert worker.runs == {}
    # Its report that the copy was cancelled is expected: no error, nothing changes.
    error = directives.ErrorInfo(type="Cancelled", message="run is not yours")
    workers.reports.failed(
        worker, directives.RoutineFailed(run_id=ghost.run_id, attempt=3, error=error, completed_at=directives.now())
    )
    assert dispatcher.get(ghost.run_id) is None
