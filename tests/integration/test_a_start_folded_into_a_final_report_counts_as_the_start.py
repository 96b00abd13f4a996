"""A worker that negotiated ``workpath.v1.batches`` may fold a run's start into its final report: the service takes a
``completed``/``failed`` carrying ``started_at`` as the run's start, then its end, so the run keeps the reported start
and its run time counts from it.

The service does the same toward a requester: every final report it forwards carries the child's worker ID and start,
so a parent whose children ended before their forwarded ``starting`` was written still knows each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives, errors
from workpath_operator.service import runs, serving

AUTH = {"Authorization": f"Bearer {fleets.TOKEN}"}
TIMEOUT = 5.0
EARLIER = datetime.timedelta(seconds=2)


class FoldingWorker:
    """A worker on a raw WebSocket under batches: it answers pulse checks and keeps the runs it is given."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, worker_id: directives.WorkerID) -> None:
        self.ws = ws
        self.worker_id = worker_id
        self.starts: list[directives.StartRoutine] = []

    async def read(self) -> None:
        async for message in self.ws:
            assert message.type is aiohttp.WSMsgType.TEXT, message
            frame: str = message.data
            items = (
                directives.decode_batch_from_service(frame)
                if directives.is_batch(frame)
                else [directives.decode_from_service(frame)]
            )
            for item in items:
                assert not isinstance(item, errors.DirectiveError), frame
                if isinstance(item, directives.CheckPulse):
                    await self.ws.send_str(directives.encode(directives.GivePulse(id=item.id)))
                elif isinstance(item, directives.StartRoutine):
                    self.starts.append(item)

    async def given(self, run: runs.Run) -> directives.StartRoutine:
        """The start of ``run`` this worker was given, once it came."""
        await waiting.eventually(
            lambda: any(start.run_id == run.run_id for start in self.starts), timeout=TIMEOUT, what="the start"
        )
        return next(start for start in self.starts if start.run_id == run.run_id)


@contextlib.asynccontextmanager
async def folding_worker(service: serving.DirectiveService) -> AsyncIterator[FoldingWorker]:
    worker_id = directives.WorkerID("folder")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(service.url, headers=AUTH, protocols=(directives.BATCHES,)) as ws,
    ):
        assert ws.protocol == directives.BATCHES
        worker = FoldingWorker(ws, worker_id)
        reader = asyncio.create_task(worker.read(), name="folding-worker")
        try:
            await ws.send_str(directives.encode(directives.Ready(worker_id=worker_id, routines=["test.*"], slots=2)))
            sessions = service.dispatcher.sessions
            await waiting.eventually(
                lambda: worker_id in sessions and sessions[worker_id].connected, timeout=TIMEOUT, what="ready"
            )
            yield worker
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def test_a_completed_report_with_its_start_makes_the_run_start_then_succeed(
    service: serving.DirectiveService,
) -> None:
    async with folding_worker(service) as worker:
        run = submitting.submit(service, "test.echo", value=1)
        start = await worker.given(run)
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
    async with folding_worker(service) as worker:
        run = submitting.submit(service, "test.echo", value=2)  # retries: none
        start = await worker.given(run)
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
