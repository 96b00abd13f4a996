"""Workers written by hand on a raw WebSocket, for tests that choose each frame a worker sends: one directive
alone or several in a batch frame (under ``workpath.v1.batches``), at the moment the test wants."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import aiohttp

from tests import waiting
from tests.integration import fleets
from workpath import directives, errors
from workpath_operator.service import serving

AUTH = {"Authorization": f"Bearer {fleets.TOKEN}"}
TIMEOUT = 5.0


class RawWorker:
    """A worker written by hand on a raw WebSocket: it answers pulse checks as they come, and keeps every frame the
    service sends it, with the directives it holds, for the test to look at."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, worker_id: str) -> None:
        self.ws = ws
        self.worker_id = directives.WorkerID(worker_id)
        self.frames: list[str] = []
        self.received: list[directives.Payload] = []
        self.pulses_answered = 0
        #: Each pulse check's ``received``, with the pulses this worker had answered when it came.
        self.confirmations: list[tuple[int, int]] = []

    def of[P: directives.Payload](self, kind: type[P]) -> list[P]:
        return [payload for payload in self.received if isinstance(payload, kind)]

    async def expect[P: directives.Payload](self, kind: type[P], count: int) -> list[P]:
        """The first ``count`` directives of ``kind`` the service sent, once they came."""
        await waiting.eventually(
            lambda: len(self.of(kind)) >= count, timeout=TIMEOUT, what=f"{count} {kind.KEY} directives"
        )
        return self.of(kind)[:count]

    async def given(self, run_id: directives.RunID) -> directives.StartRoutine:
        """The start of run ``run_id`` this worker was given, once it came."""
        await waiting.eventually(
            lambda: any(start.run_id == run_id for start in self.of(directives.StartRoutine)),
            timeout=TIMEOUT,
            what=f"the start of {run_id}",
        )
        return next(start for start in self.of(directives.StartRoutine) if start.run_id == run_id)

    async def errors_until_a_barrier(self) -> list[directives.Error]:
        """The v1.error answers to what was sent so far: a report of an unknown run is sent after it, and the
        service answers in order, so once its unknown_run comes every earlier answer has come (and every frame the
        service queued for this worker before it)."""
        before = len(self.of(directives.Error))
        barrier = directives.RoutineCompleted(run_id=directives.RunID("no-such-run"), completed_at=directives.now())
        await self.ws.send_str(directives.encode(barrier))
        await waiting.eventually(
            lambda: any(e.code == directives.ErrorCode.UNKNOWN_RUN for e in self.of(directives.Error)[before:]),
            timeout=TIMEOUT,
            what="the answer to the barrier",
        )
        answers = self.of(directives.Error)[before:]
        assert (answers[-1].code, answers[-1].in_reply_to) == (directives.ErrorCode.UNKNOWN_RUN, barrier.KEY)
        return answers[:-1]

    async def read(self) -> None:
        async for message in self.ws:
            assert message.type is aiohttp.WSMsgType.TEXT, message
            frame: str = message.data
            self.frames.append(frame)
            for payload in decoded(frame):
                if isinstance(payload, directives.CheckPulse):
                    self.confirmations.append((payload.received, self.pulses_answered))
                    await self.ws.send_str(directives.encode(directives.GivePulse(id=payload.id)))
                    self.pulses_answered += 1
                self.received.append(payload)


def decoded(frame: str) -> list[directives.Payload]:
    """The directives of a frame from the service: a batch, or one directive; the service never sends a bad one."""
    if not directives.is_batch(frame):
        return [directives.decode_from_service(frame)]
    items = directives.decode_batch_from_service(frame)
    assert not [item for item in items if isinstance(item, errors.DirectiveError)], frame
    return [item for item in items if not isinstance(item, errors.DirectiveError)]


@contextlib.asynccontextmanager
async def connected(
    service: serving.DirectiveService,
    worker_id: str,
    *,
    batching: bool,
    slots: int,
    routines: Sequence[str] = ("test.*",),
) -> AsyncIterator[RawWorker]:
    """A raw worker connected (asking for batches or not) and ready: its v1.ready is a batch of one when it batches."""
    protocols = (directives.BATCHES,) if batching else ()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(service.url, headers=AUTH, protocols=protocols) as ws,
    ):
        assert ws.protocol == (directives.BATCHES if batching else None)
        worker = RawWorker(ws, worker_id)
        reader = asyncio.create_task(worker.read(), name=f"raw-worker-{worker_id}")
        try:
            ready = directives.Ready(worker_id=worker.worker_id, routines=list(routines), slots=slots)
            frame = directives.encode(ready)
            await ws.send_str(directives.encode_batch([frame]) if batching else frame)
            sessions = service.dispatcher.sessions
            await waiting.eventually(
                lambda: worker.worker_id in sessions and sessions[worker.worker_id].connected,
                timeout=TIMEOUT,
                what=f"{worker_id} to be ready",
            )
            yield worker
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def reports(worker: RawWorker, start: directives.StartRoutine) -> list[str]:
    """The frames of a run started and completed, its result its run ID."""
    starting = directives.RoutineStarting(
        run_id=start.run_id, attempt=start.attempt, worker_id=worker.worker_id, started_at=directives.now()
    )
    completed = directives.RoutineCompleted(
        run_id=start.run_id, attempt=start.attempt, result=start.run_id, completed_at=directives.now()
    )
    return [directives.encode(starting), directives.encode(completed)]
