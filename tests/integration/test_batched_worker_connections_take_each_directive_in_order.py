"""A worker that negotiates ``workpath.v1.batches`` gets and sends batch frames: each directive of a batch is taken
in order, each bad one gets its own v1.error, and a batch over the frame limit is measured directive by directive.
A worker that does not ask for batches gets one directive per frame, as before.

The service here takes frames of at most 16 KiB, so that a batch over the limit is cheap to send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives, errors
from workpath_operator.service import runs, serving, settings

AUTH = {"Authorization": f"Bearer {fleets.TOKEN}"}
MAX_FRAME_BYTES = 16 << 10
TIMEOUT = 5.0


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    return service_settings.replace(max_frame_bytes=MAX_FRAME_BYTES, max_params_bytes=8 << 10)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


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

    async def errors_until_a_barrier(self) -> list[directives.Error]:
        """The v1.error answers to what was sent so far: a report of an unknown run is sent after it, and the
        service answers in order, so once its unknown_run comes every earlier answer has come."""
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
async def raw_worker(
    service: serving.DirectiveService, http: aiohttp.ClientSession, worker_id: str, *, batching: bool, slots: int
) -> AsyncIterator[RawWorker]:
    """A raw worker connected (asking for batches or not) and ready: its v1.ready is a batch of one when it batches."""
    protocols = (directives.BATCHES,) if batching else ()
    async with http.ws_connect(service.url, headers=AUTH, protocols=protocols) as ws:
        worker = RawWorker(ws, worker_id)
        reader = asyncio.create_task(worker.read(), name=f"raw-worker-{worker_id}")
        try:
            ready = directives.encode(directives.Ready(worker_id=worker.worker_id, routines=["test.*"], slots=slots))
            await ws.send_str(directives.encode_batch([ready]) if batching else ready)
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


async def all_succeeded(service: serving.DirectiveService, submitted: list[runs.Run]) -> None:
    done = await asyncio.gather(*(submitting.finished(service, run, timeout=TIMEOUT) for run in submitted))
    assert [(run.phase, run.result) for run in done] == [(runs.Phase.SUCCEEDED, run.run_id) for run in submitted]


async def test_the_service_chooses_batches_when_a_worker_asks_for_them(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(service.url, headers=AUTH, protocols=(directives.BATCHES,)) as ws:
        assert ws.protocol == directives.BATCHES
    async with http.ws_connect(service.url, headers=AUTH, protocols=("workpath.v0.smoke-signals",)) as ws:
        assert ws.protocol is None


async def test_a_worker_that_does_not_ask_for_batches_gets_one_directive_per_frame(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with raw_worker(service, http, "plain", batching=False, slots=5) as worker:
        assert worker.ws.protocol is None
        submitted = [submitting.submit(service, "test.echo", value=n) for n in range(5)]
        starts = await worker.expect(directives.StartRoutine, 5)
        assert {start.run_id for start in starts} == {run.run_id for run in submitted}
        assert worker.frames and not [frame for frame in worker.frames if directives.is_batch(frame)]
        for start in starts:
            for frame in reports(worker, start):
                await worker.ws.send_str(frame)
        await all_succeeded(service, submitted)


async def test_a_batching_worker_gets_starts_in_batches_and_each_directive_of_its_batch_is_taken(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with raw_worker(service, http, "batcher", batching=True, slots=5) as worker:
        assert worker.ws.protocol == directives.BATCHES
        submitted = [submitting.submit(service, "test.echo", value=n) for n in range(5)]
        starts = await worker.expect(directives.StartRoutine, 5)
        assert {start.run_id for start in starts} == {run.run_id for run in submitted}
        batched = [
            frame
            for frame in worker.frames
            if directives.is_batch(frame) and sum(isinstance(p, directives.StartRoutine) for p in decoded(frame)) > 1
        ]
        assert batched, worker.frames

        frames = [frame for start in starts for frame in reports(worker, start)]
        frames.insert(3, '{"payloadKey": "v1.teleport", "payload": {}}')
        frames.insert(7, '{"payloadKey": "v1.routine.starting", "payload": {"runID": 5}}')
        await worker.ws.send_str(directives.encode_batch(frames))

        answers = await worker.errors_until_a_barrier()
        assert [(answer.code, answer.in_reply_to) for answer in answers] == [
            (directives.ErrorCode.UNKNOWN_DIRECTIVE, "v1.teleport"),
            (directives.ErrorCode.INVALID_PAYLOAD, "v1.routine.starting"),
        ]
        await all_succeeded(service, submitted)
        assert not worker.ws.closed
        assert service.dispatcher.sessions[worker.worker_id].connected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[]", directives.ErrorCode.BAD_ENVELOPE),
        ("[1,2", directives.ErrorCode.BAD_JSON),
        ("[" * 5000, directives.ErrorCode.BAD_JSON),
    ],
    ids=["empty", "unterminated", "too-deep"],
)
async def test_a_bad_batch_frame_gets_one_v1_error_and_the_connection_stays_up(
    service: serving.DirectiveService, http: aiohttp.ClientSession, frame: str, code: str
) -> None:
    async with raw_worker(service, http, "clumsy", batching=True, slots=1) as worker:
        await worker.ws.send_str(frame)
        answers = await worker.errors_until_a_barrier()
        assert [answer.code for answer in answers] == [code]
        assert answers[0].message

        run = submitting.submit(service, "test.echo", value=1)
        (start,) = await worker.expect(directives.StartRoutine, 1)
        await worker.ws.send_str(directives.encode_batch(reports(worker, start)))
        await all_succeeded(service, [run])


async def test_a_batch_over_the_frame_limit_is_taken_but_a_directive_over_it_is_refused(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with raw_worker(service, http, "logger", batching=True, slots=1) as worker:
        run = submitting.submit(service, "test.echo", value=1)
        (start,) = await worker.expect(directives.StartRoutine, 1)
        starting, completed = reports(worker, start)

        def line(n: int, *, chars: int) -> str:
            entry = directives.Log(run_id=run.run_id, message="x" * chars, time=directives.now(), fields={"n": n})
            return directives.encode(entry)

        small = [line(n, chars=MAX_FRAME_BYTES // 4) for n in range(6)]
        assert all(len(frame) < MAX_FRAME_BYTES for frame in small)
        too_large = line(99, chars=MAX_FRAME_BYTES)
        batch = directives.encode_batch([starting, *small[:3], too_large, *small[3:], completed])
        assert len(batch) > 2 * MAX_FRAME_BYTES
        await worker.ws.send_str(batch)

        answers = await worker.errors_until_a_barrier()
        assert [(answer.code, answer.in_reply_to) for answer in answers] == [
            (directives.ErrorCode.FRAME_TOO_LARGE, "v1.log")
        ]
        assert [entry.fields["n"] for entry in service.store.logs(run.run_id)] == list(range(6))
        assert all(len(entry.message) == MAX_FRAME_BYTES // 4 for entry in service.store.logs(run.run_id))
        await all_succeeded(service, [run])
        assert service.dispatcher.sessions[worker.worker_id].connected


async def test_each_directive_of_a_batch_counts_in_the_pulses_confirmation(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    """A pulse confirms how many directives the service read (the worker forgets the reports below it), so a
    batch of ten counts as ten: counted as one frame, the worker would replay nine of them for nothing."""
    async with raw_worker(service, http, "counted", batching=True, slots=1) as worker:
        status = directives.encode(directives.GivePulse(status="idle"))  # no answer, no effect: only counted
        await worker.ws.send_str(directives.encode_batch([status] * 10))

        def everything_confirmed() -> bool:
            # Sent before a pulse check: the batch of v1.ready, the answers to earlier checks, the ten.
            return any(received == 1 + answered + 10 for received, answered in worker.confirmations)

        await waiting.eventually(everything_confirmed, timeout=TIMEOUT, what="a pulse confirming every directive")
        assert all(received <= 1 + answered + 10 for received, answered in worker.confirmations)
