"""After a restart the dispatcher adopts the runs still on their workers: a run a reconnecting worker holds is kept
(not started again), a dispatch that was not recorded is adopted, and the rest wait until workers had a chance to
reconnect."""

from __future__ import annotations

from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching, runs, settings, stores


async def test_after_a_restart_a_run_still_on_its_worker_is_kept_not_started_again(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    running = fakes.restored(runs.Phase.RUNNING, worker="w", attempt=1)
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
    pending = fakes.restored(runs.Phase.PENDING, worker=None, attempt=0)
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
        pending = fakes.restored(runs.Phase.PENDING, worker=None, attempt=0)
        dispatcher.restore([pending])
        worker = workers.attach("fresh", slots=1)
        assert worker.runs == {}  # not at once: the worker that may hold it had no chance to reconnect yet
        dispatched = await workers.next_starts(worker)
        assert dispatched[0].run_id == pending.run_id and dispatched[0].attempt == 1
    finally:
        await workers.close()
