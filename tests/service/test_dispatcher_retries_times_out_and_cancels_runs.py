"""The dispatcher's timers and cascades: a retryable failure comes back as a new attempt after its backoff, a run no
worker can take fails after its timeout, and cancelling a parent cancels its children on their workers."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching, runs

# Time is the subject here: the backoff and the timeout run on the loop's fake, fast-forwarded clock.
pytestmark = pytest.mark.looptime


async def test_a_retryable_failure_is_retried_as_a_new_attempt(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w")
    run = dispatcher.submit(fakes.spec(retries={"limit": 1, "backoffSeconds": 0}))
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
    # cast: the report changed the phase mypy narrowed to PENDING above
    assert cast(runs.Phase, run.phase) is runs.Phase.FAILED and run.error == error


async def test_a_run_no_worker_can_take_fails_after_its_timeout(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    workers.attach("w", routines=("other.*",))
    loop = asyncio.get_running_loop()
    submitted_at = loop.time()
    run = dispatcher.submit(fakes.spec("nobody.runs.this", timeoutSeconds=0.05))
    assert run.phase is runs.Phase.PENDING and dispatcher.queue_depth() == 1
    finished = await asyncio.wait_for(dispatcher.wait_finished(run), 2)
    assert loop.time() - submitted_at == pytest.approx(0.05, abs=1e-3)  # at its timeout, not before nor much after
    assert finished.phase is runs.Phase.FAILED
    assert finished.error is not None and finished.error.type == directives.ErrorType.QUEUE_TIMEOUT
    assert "nobody.runs.this" in finished.error.message and dispatcher.queue_depth() == 0


async def test_cancelling_a_parent_cancels_its_children_on_their_workers(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w", slots=2)
    parent = dispatcher.submit(fakes.spec("parent"))
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
