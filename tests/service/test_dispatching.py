"""The dispatcher's matching and run state, without sockets: frames are read from the session outbox."""

from __future__ import annotations

import asyncio

import pytest

from workpath import directives, errors
from workpath_operator.service import dispatching, runs, sessions, settings, stores

ID = directives.WorkerID


class FakeSocket:
    """Stands for a connection: the dispatcher only compares it by identity."""


@pytest.fixture
async def dispatcher() -> dispatching.Dispatcher:
    return dispatching.Dispatcher(config=settings.ServiceSettings(), observer=stores.MemoryRunStore())


def attach(
    d: dispatching.Dispatcher, worker: str, *, slots: int = 1, routines: tuple[str, ...] = ("*",), pool: str = "default"
) -> sessions.WorkerSession:
    return d.attach(
        FakeSocket(), directives.Ready(worker_id=ID(worker), routines=list(routines), slots=slots, pool=pool)
    )


def sent(session: sessions.WorkerSession) -> list[directives.Payload]:
    frames = [directives.decode_from_service(f) for f in session._outbox]
    session._outbox.clear()
    return frames


def starts(session: sessions.WorkerSession) -> list[directives.StartRoutine]:
    return [p for p in sent(session) if isinstance(p, directives.StartRoutine)]


def spec(routine: str = "a.b", **kwargs: object) -> runs.RunSpec:
    return runs.RunSpec.model_validate({"routineID": routine, **kwargs})


def complete(d: dispatching.Dispatcher, s: sessions.WorkerSession, start: directives.StartRoutine) -> None:
    d.starting(
        s,
        directives.RoutineStarting(
            run_id=start.run_id, attempt=start.attempt, worker_id=s.worker_id, started_at=directives.now()
        ),
    )
    d.completed(
        s,
        directives.RoutineCompleted(
            run_id=start.run_id, attempt=start.attempt, result=start.params, completed_at=directives.now()
        ),
        size=10,
    )


async def test_queued_runs_go_by_priority_then_arrival(dispatcher: dispatching.Dispatcher) -> None:
    low1 = dispatcher.submit(spec(priority=0))
    high = dispatcher.submit(spec(priority=5))
    low2 = dispatcher.submit(spec(priority=0))
    worker = attach(dispatcher, "w", slots=1)
    order = []
    for _ in range(3):
        (start,) = starts(worker)
        order.append(start.run_id)
        complete(dispatcher, worker, start)
    assert order == [high.run_id, low1.run_id, low2.run_id]


async def test_a_worker_gets_no_more_runs_than_slots(dispatcher: dispatching.Dispatcher) -> None:
    worker = attach(dispatcher, "w", slots=2)
    for _ in range(3):
        dispatcher.submit(spec())
    assert len(starts(worker)) == 2
    assert dispatcher.queue_depth() == 1


async def test_routine_patterns_and_pools_decide_who_runs_what(dispatcher: dispatching.Dispatcher) -> None:
    reports = attach(dispatcher, "reports", slots=5, routines=("reports.*",))
    gpu = attach(dispatcher, "gpu", slots=5, routines=("*",), pool="gpu")
    build = dispatcher.submit(spec("reports.build", pool="default"))
    train = dispatcher.submit(spec("model.train", pool="gpu"))
    mail = dispatcher.submit(spec("mail.send", pool="default"))
    assert [s.run_id for s in starts(reports)] == [build.run_id]
    assert [s.run_id for s in starts(gpu)] == [train.run_id]
    assert mail.queued and dispatcher.queue_depth() == 1
    # a worker that can run it arrives later and takes it from the queue
    mailer = attach(dispatcher, "mailer", slots=1, routines=("mail.send",))
    assert [s.run_id for s in starts(mailer)] == [mail.run_id]


async def test_a_parent_waiting_on_a_child_lends_its_only_slot(dispatcher: dispatching.Dispatcher) -> None:
    worker = attach(dispatcher, "w", slots=1)
    parent = dispatcher.submit(spec("chain"))
    (start,) = starts(worker)
    dispatcher.request(
        worker,
        directives.RequestSubroutine(
            request_id=directives.RequestID("q1"), routine_id=directives.RoutineID("leaf"), parent_run_id=start.run_id
        ),
    )
    (child_start,) = starts(worker)
    assert child_start.parent_run_id == parent.run_id
    complete(dispatcher, worker, child_start)
    forwarded = sent(worker)
    assert any(isinstance(p, directives.RoutineCompleted) and p.request_id == "q1" for p in forwarded)
    assert parent.holds_slot and worker.busy == 1
    assert parent.children_total == 1 and parent.children_succeeded == 1


async def test_a_report_for_an_attempt_the_worker_no_longer_holds_is_refused(
    dispatcher: dispatching.Dispatcher,
) -> None:
    first = attach(dispatcher, "first", slots=1)
    run = dispatcher.submit(spec(retries={"limit": 0}))
    (old,) = starts(first)
    dispatcher.lose(first, "went away")
    second = attach(dispatcher, "second", slots=1)
    (new,) = starts(second)
    assert new.attempt == old.attempt + 1
    late = directives.RoutineCompleted(
        run_id=old.run_id, attempt=old.attempt, result="stale", completed_at=directives.now()
    )
    with pytest.raises(errors.DirectiveError) as caught:
        dispatcher.completed(second, late, size=10)
    assert caught.value.code == directives.ErrorCode.STALE_ATTEMPT
    assert run.phase is runs.Phase.PENDING and run.result is None
    complete(dispatcher, second, new)
    assert run.phase is runs.Phase.SUCCEEDED and run.worker == "second"


async def test_a_repeated_final_report_is_ignored(dispatcher: dispatching.Dispatcher) -> None:
    worker = attach(dispatcher, "w")
    run = dispatcher.submit(spec(params={"x": 1}))
    (start,) = starts(worker)
    complete(dispatcher, worker, start)
    complete(dispatcher, worker, start)  # a replay after a reconnect: no error, no change
    assert run.phase is runs.Phase.SUCCEEDED and run.result == {"x": 1}


async def test_a_retryable_failure_is_retried_as_a_new_attempt(dispatcher: dispatching.Dispatcher) -> None:
    worker = attach(dispatcher, "w")
    run = dispatcher.submit(spec(retries={"limit": 1, "backoffSeconds": 0}))
    (first,) = starts(worker)
    assert first.attempt == 1
    error = directives.ErrorInfo(type="TimeoutError", message="slow", retryable=True)
    dispatcher.failed(
        worker, directives.RoutineFailed(run_id=run.run_id, attempt=1, error=error, completed_at=directives.now())
    )
    assert run.phase is runs.Phase.PENDING and run.reason == "Retrying"
    async with asyncio.timeout(2):
        while not (retry := starts(worker)):
            await asyncio.sleep(0.005)
    assert retry[0].attempt == 2
    dispatcher.failed(
        worker, directives.RoutineFailed(run_id=run.run_id, attempt=2, error=error, completed_at=directives.now())
    )
    assert run.phase is runs.Phase.FAILED and run.error == error


async def test_a_run_no_worker_can_take_fails_after_its_timeout(dispatcher: dispatching.Dispatcher) -> None:
    attach(dispatcher, "w", routines=("other.*",))
    run = dispatcher.submit(spec("nobody.runs.this", timeoutSeconds=0.05))
    assert run.phase is runs.Phase.PENDING and dispatcher.queue_depth() == 1
    finished = await asyncio.wait_for(dispatcher.wait_finished(run), 2)
    assert finished.phase is runs.Phase.FAILED
    assert finished.error is not None and finished.error.type == "QueueTimeoutError"
    assert "nobody.runs.this" in finished.error.message and dispatcher.queue_depth() == 0


async def test_cancelling_a_parent_cancels_its_children_on_their_workers(dispatcher: dispatching.Dispatcher) -> None:
    worker = attach(dispatcher, "w", slots=2)
    parent = dispatcher.submit(spec("parent"))
    (start,) = starts(worker)
    dispatcher.request(
        worker,
        directives.RequestSubroutine(
            request_id=directives.RequestID("q"), routine_id=directives.RoutineID("child"), parent_run_id=start.run_id
        ),
    )
    (child,) = starts(worker)
    assert dispatcher.cancel(parent.run_id, reason="deleted")
    cancels = {p.run_id for p in sent(worker) if isinstance(p, directives.CancelRoutine)}
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


def held(*pairs: tuple[runs.Run, int]) -> list[directives.HeldRun]:
    return [directives.HeldRun(run_id=run.run_id, attempt=attempt) for run, attempt in pairs]


async def test_after_a_restart_a_run_still_on_its_worker_is_kept_not_started_again(
    dispatcher: dispatching.Dispatcher,
) -> None:
    running = restored(runs.Phase.RUNNING, worker="w", attempt=1)
    dispatcher.restore([running])
    worker = dispatcher.attach(
        FakeSocket(), directives.Ready(worker_id=ID("w"), routines=["*"], slots=1, running=held((running, 1)))
    )
    assert starts(worker) == []
    assert worker.runs == {running.run_id: running} and worker.busy == 1
    dispatcher.completed(
        worker,
        directives.RoutineCompleted(run_id=running.run_id, attempt=1, result="kept", completed_at=directives.now()),
        size=10,
    )
    assert (running.phase, running.attempt, running.result) == (runs.Phase.SUCCEEDED, 1, "kept")


async def test_after_a_restart_a_dispatch_that_was_not_recorded_is_adopted(dispatcher: dispatching.Dispatcher) -> None:
    pending = restored(runs.Phase.PENDING, worker=None, attempt=0)
    dispatcher.restore([pending])
    other = attach(dispatcher, "other", slots=5)
    assert starts(other) == []  # settling: nothing is dispatched while workers may still report it
    worker = dispatcher.attach(
        FakeSocket(), directives.Ready(worker_id=ID("w"), routines=["*"], slots=1, running=held((pending, 1)))
    )
    assert starts(worker) == []
    assert (pending.worker, pending.attempt, pending.phase) == ("w", 1, runs.Phase.RUNNING)
    assert dispatcher.queue_depth() == 0


async def test_restored_runs_are_dispatched_once_their_workers_had_a_chance_to_reconnect() -> None:
    config = settings.ServiceSettings(settle_seconds=0.05)
    dispatcher = dispatching.Dispatcher(config=config, observer=stores.MemoryRunStore())
    pending = restored(runs.Phase.PENDING, worker=None, attempt=0)
    dispatcher.restore([pending])
    worker = attach(dispatcher, "fresh", slots=1)
    assert starts(worker) == []
    async with asyncio.timeout(2):
        while not (dispatched := starts(worker)):
            await asyncio.sleep(0.005)
    assert dispatched[0].run_id == pending.run_id and dispatched[0].attempt == 1


async def test_a_worker_reporting_a_run_the_service_does_not_know_is_told_to_cancel_it(
    dispatcher: dispatching.Dispatcher,
) -> None:
    ghost = restored(runs.Phase.RUNNING, worker=None, attempt=3)  # never given to the dispatcher
    worker = dispatcher.attach(
        FakeSocket(), directives.Ready(worker_id=ID("w"), routines=["*"], slots=1, running=held((ghost, 3)))
    )
    cancels = [p for p in sent(worker) if isinstance(p, directives.CancelRoutine)]
    assert [c.run_id for c in cancels] == [ghost.run_id]
    assert worker.runs == {}
    # Its report that the copy was cancelled is expected: no error, nothing changes.
    error = directives.ErrorInfo(type="Cancelled", message="run is not yours")
    dispatcher.failed(
        worker, directives.RoutineFailed(run_id=ghost.run_id, attempt=3, error=error, completed_at=directives.now())
    )
    assert dispatcher.get(ghost.run_id) is None
