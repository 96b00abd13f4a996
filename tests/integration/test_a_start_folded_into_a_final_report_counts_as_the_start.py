"""A worker that negotiated ``workpath.v1.batches`` may fold a run's start into its final report: the service takes a
``completed``/``failed`` carrying ``started_at`` as the run's start, then its end, so the run keeps the reported start
and its run time counts from it.

The service does the same toward a requester: every final report it forwards carries the child's worker ID and start,
so a parent whose children ended before their forwarded ``starting`` was written still knows each one. It skips that
``starting`` only toward a requester under batches (which reads the start in the final report); any other requester
gets the ``starting`` first, as before.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator

import pytest

from tests.integration import fleets, rawworkers, submitting
from workpath import directives
from workpath_operator.service import runs, serving

TIMEOUT = rawworkers.TIMEOUT
EARLIER = datetime.timedelta(seconds=2)
REQUEST = directives.RequestID("request-1")


async def test_a_completed_report_with_its_start_makes_the_run_start_then_succeed(
    service: serving.DirectiveService,
) -> None:
    async with rawworkers.connected(service, "folder", batching=True, slots=2) as worker:
        run = submitting.submit(service, "test.echo", value=1)
        start = await worker.given(run.run_id)
        assert run.phase is runs.Phase.PENDING  # given, never reported starting
        completed_at = directives.now()
        started_at = completed_at - EARLIER
        report = directives.RoutineCompleted(
            run_id=start.run_id,
            attempt=start.attempt,
            result="folded",
            completed_at=completed_at,
            started_at=started_at,
        )
        await worker.ws.send_str(directives.encode(report))
        done = await submitting.finished(service, run, timeout=TIMEOUT)
    assert (done.phase, done.result, done.worker) == (runs.Phase.SUCCEEDED, "folded", worker.worker_id)
    assert (done.started_at, done.completed_at) == (started_at, completed_at)
    assert done.run_time == pytest.approx(EARLIER.total_seconds())


async def test_a_failed_report_with_its_start_makes_the_run_start_then_fail(
    service: serving.DirectiveService,
) -> None:
    async with rawworkers.connected(service, "folder", batching=True, slots=2) as worker:
        run = submitting.submit(service, "test.echo", value=2)  # retries: none
        start = await worker.given(run.run_id)
        completed_at = directives.now()
        started_at = completed_at - EARLIER
        report = directives.RoutineFailed(
            run_id=start.run_id,
            attempt=start.attempt,
            error=directives.ErrorInfo(type="ValueError", message="folded failure", retryable=True),
            completed_at=completed_at,
            started_at=started_at,
        )
        await worker.ws.send_str(directives.encode(report))
        done = await submitting.finished(service, run, timeout=TIMEOUT)
    assert (done.phase, done.message) == (runs.Phase.FAILED, "folded failure")
    assert (done.started_at, done.completed_at) == (started_at, completed_at)
    assert done.run_time == pytest.approx(EARLIER.total_seconds())


async def test_a_parent_knows_each_quick_childs_run_worker_and_start(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1", slots=4)
    parent = submitting.submit(service, "test.children", n=3)
    done = await submitting.finished(service, parent, timeout=TIMEOUT)
    assert done.phase is runs.Phase.SUCCEEDED, done.message
    known = {run_id: (worker_id, started_at) for run_id, worker_id, started_at in done.result}
    assert len(known) == 3
    for run_id, (worker_id, started_at) in known.items():
        child = service.dispatcher.get(directives.RunID(run_id))
        assert child is not None, run_id
        assert (child.parent_run_id, child.phase, child.worker) == (parent.run_id, runs.Phase.SUCCEEDED, "w-1")
        assert worker_id == "w-1"
        assert child.started_at is not None and child.completed_at is not None
        assert child.started_at <= child.completed_at
        assert started_at is not None and datetime.datetime.fromisoformat(started_at) == child.started_at


class Delegation:
    """A parent run held by a raw *parent* worker, which asked for one child; a raw *child* worker was given it."""

    def __init__(
        self, parent: rawworkers.RawWorker, child: rawworkers.RawWorker, start: directives.StartRoutine
    ) -> None:
        self.parent = parent
        self.child = child
        self.start = start
        self.started_at = directives.now() - EARLIER
        self.starting = directives.RoutineStarting(
            run_id=start.run_id, attempt=start.attempt, worker_id=child.worker_id, started_at=self.started_at
        )
        self.completed = directives.RoutineCompleted(
            run_id=start.run_id, attempt=start.attempt, result="done", completed_at=directives.now()
        )

    async def forwarded_final(self) -> directives.RoutineCompleted:
        """The child's final report, forwarded to the parent worker under its request ID, once it came."""
        (final,) = await self.parent.expect(directives.RoutineCompleted, 1)
        assert (final.run_id, final.request_id, final.result) == (self.start.run_id, REQUEST, "done")
        assert (final.worker_id, final.started_at) == (self.child.worker_id, self.started_at)
        return final


@contextlib.asynccontextmanager
async def delegation(service: serving.DirectiveService, *, parent_batching: bool) -> AsyncIterator[Delegation]:
    """A parent run on a raw parent worker (asking for batches or not) that asked for a child, given to a raw child
    worker under batches; once the test is done, the child succeeded on that worker from the start it reported."""
    async with (
        rawworkers.connected(
            service, "parent-worker", batching=parent_batching, slots=1, routines=["test.parent"]
        ) as parent_worker,
        rawworkers.connected(service, "child-worker", batching=True, slots=1, routines=["test.child"]) as child_worker,
    ):
        parent = submitting.submit(service, "test.parent")
        held = await parent_worker.given(parent.run_id)
        starting = directives.RoutineStarting(
            run_id=held.run_id, attempt=held.attempt, worker_id=parent_worker.worker_id, started_at=directives.now()
        )
        request = directives.RequestSubroutine(
            request_id=REQUEST, routine_id=directives.RoutineID("test.child"), parent_run_id=held.run_id
        )
        await parent_worker.ws.send_str(directives.encode(starting))
        await parent_worker.ws.send_str(directives.encode(request))
        (start,) = await child_worker.expect(directives.StartRoutine, 1)
        assert start.routine_id == "test.child"
        delegated = Delegation(parent_worker, child_worker, start)
        yield delegated
        child = service.dispatcher.get(start.run_id)
        assert child is not None
        assert (child.parent_run_id, child.phase, child.worker) == (
            parent.run_id,
            runs.Phase.SUCCEEDED,
            child_worker.worker_id,
        )
        assert child.started_at == delegated.started_at


async def test_a_batching_requester_is_told_of_a_childs_start_told_alone_then_of_its_end(
    service: serving.DirectiveService,
) -> None:
    async with delegation(service, parent_batching=True) as delegated:
        await delegated.child.ws.send_str(directives.encode(delegated.starting))
        (forwarded,) = await delegated.parent.expect(directives.RoutineStarting, 1)
        assert (forwarded.run_id, forwarded.attempt, forwarded.request_id) == (
            delegated.start.run_id,
            delegated.start.attempt,
            REQUEST,
        )
        assert (forwarded.worker_id, forwarded.started_at) == (delegated.child.worker_id, delegated.started_at)

        await delegated.child.ws.send_str(directives.encode(delegated.completed))
        await delegated.forwarded_final()


async def test_a_batching_requester_learns_of_a_childs_start_from_its_final_report_when_both_came_at_once(
    service: serving.DirectiveService,
) -> None:
    async with delegation(service, parent_batching=True) as delegated:
        reports = [directives.encode(delegated.starting), directives.encode(delegated.completed)]
        await delegated.child.ws.send_str(directives.encode_batch(reports))
        await delegated.forwarded_final()
        # Whatever the service queued for the parent worker before the answer to a barrier has come by then.
        assert await delegated.parent.errors_until_a_barrier() == []
        assert delegated.parent.of(directives.RoutineStarting) == []
        assert len(delegated.parent.of(directives.RoutineCompleted)) == 1


async def test_a_requester_without_batches_is_told_of_a_childs_start_before_its_end_even_when_both_came_at_once(
    service: serving.DirectiveService,
) -> None:
    async with delegation(service, parent_batching=False) as delegated:
        reports = [directives.encode(delegated.starting), directives.encode(delegated.completed)]
        await delegated.child.ws.send_str(directives.encode_batch(reports))
        final = await delegated.forwarded_final()
        news = [
            p
            for p in delegated.parent.received
            if isinstance(p, directives.RoutineStarting | directives.RoutineCompleted)
        ]
        assert news == [
            directives.RoutineStarting(
                run_id=delegated.start.run_id,
                attempt=delegated.start.attempt,
                request_id=REQUEST,
                worker_id=delegated.child.worker_id,
                started_at=delegated.started_at,
            ),
            final,
        ]
