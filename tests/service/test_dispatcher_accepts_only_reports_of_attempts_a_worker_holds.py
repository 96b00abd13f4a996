"""The dispatcher accepts a worker's reports only about the attempts it holds: a stale attempt's report is refused, a
repeated final report is ignored, and a run the service does not know is cancelled on the worker."""

from __future__ import annotations

from typing import cast

import pytest

from tests.service import fakes
from workpath import directives, errors
from workpath_operator.service import dispatching, runs


async def test_a_report_for_an_attempt_the_worker_no_longer_holds_is_refused(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    first = workers.attach("first", slots=1)
    run = dispatcher.submit(fakes.spec(retries={"limit": 0}))
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
    # cast: completing changed the phase mypy narrowed to PENDING above
    assert cast(runs.Phase, run.phase) is runs.Phase.SUCCEEDED and run.worker == "second"


async def test_a_repeated_final_report_is_ignored(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w")
    run = dispatcher.submit(fakes.spec(params={"x": 1}))
    (start,) = await workers.starts(worker)
    workers.complete(worker, start)
    workers.complete(worker, start)  # a replay after a reconnect: no error, no change
    assert run.phase is runs.Phase.SUCCEEDED and run.result == {"x": 1}


async def test_a_worker_reporting_a_run_the_service_does_not_know_is_told_to_cancel_it(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    ghost = fakes.restored(runs.Phase.RUNNING, worker=None, attempt=3)  # never given to the dispatcher
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
