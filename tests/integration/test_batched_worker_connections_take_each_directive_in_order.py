"""A worker that negotiates ``workpath.v1.batches`` gets and sends batch frames: each directive of a batch is taken
in order, each bad one gets its own v1.error, and a batch over the frame limit is measured directive by directive,
in bytes. A batch over the caps of a batch frame (its directives, its bytes) is refused whole. A worker that does not
ask for batches gets one directive per frame, as before.

The service here takes frames of at most 16 KiB and results of at most 8 KiB, so that a batch over the limits is
cheap to send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from tests import waiting
from tests.integration import rawworkers, submitting
from workpath import directives
from workpath_operator.service import runs, serving, settings

MAX_FRAME_BYTES = 16 << 10
MAX_RESULT_BYTES = 8 << 10
TIMEOUT = rawworkers.TIMEOUT


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    return service_settings.replace(
        max_frame_bytes=MAX_FRAME_BYTES, max_params_bytes=8 << 10, max_result_bytes=MAX_RESULT_BYTES
    )


async def all_succeeded(service: serving.DirectiveService, submitted: list[runs.Run]) -> None:
    done = await asyncio.gather(*(submitting.finished(service, run, timeout=TIMEOUT) for run in submitted))
    assert [(run.phase, run.result) for run in done] == [(runs.Phase.SUCCEEDED, run.run_id) for run in submitted]


async def test_the_service_chooses_batches_when_a_worker_asks_for_them(service: serving.DirectiveService) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(service.url, headers=rawworkers.AUTH, protocols=(directives.BATCHES,)) as ws:
            assert ws.protocol == directives.BATCHES
        async with http.ws_connect(
            service.url, headers=rawworkers.AUTH, protocols=("workpath.v0.smoke-signals",)
        ) as ws:
            assert ws.protocol is None


async def test_a_worker_that_does_not_ask_for_batches_gets_one_directive_per_frame(
    service: serving.DirectiveService,
) -> None:
    async with rawworkers.connected(service, "plain", batching=False, slots=5) as worker:
        assert worker.ws.protocol is None
        submitted = [submitting.submit(service, "test.echo", value=n) for n in range(5)]
        starts = await worker.expect(directives.StartRoutine, 5)
        assert {start.run_id for start in starts} == {run.run_id for run in submitted}
        assert worker.frames and not [frame for frame in worker.frames if directives.is_batch(frame)]
        for start in starts:
            for frame in rawworkers.reports(worker, start):
                await worker.ws.send_str(frame)
        await all_succeeded(service, submitted)


async def test_a_batching_worker_gets_starts_in_batches_and_each_directive_of_its_batch_is_taken(
    service: serving.DirectiveService,
) -> None:
    async with rawworkers.connected(service, "batcher", batching=True, slots=5) as worker:
        assert worker.ws.protocol == directives.BATCHES
        submitted = [submitting.submit(service, "test.echo", value=n) for n in range(5)]
        starts = await worker.expect(directives.StartRoutine, 5)
        assert {start.run_id for start in starts} == {run.run_id for run in submitted}
        batched = [
            frame
            for frame in worker.frames
            if directives.is_batch(frame)
            and sum(isinstance(p, directives.StartRoutine) for p in rawworkers.decoded(frame)) > 1
        ]
        assert batched, worker.frames

        frames = [frame for start in starts for frame in rawworkers.reports(worker, start)]
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
    service: serving.DirectiveService, frame: str, code: str
) -> None:
    async with rawworkers.connected(service, "clumsy", batching=True, slots=1) as worker:
        await worker.ws.send_str(frame)
        answers = await worker.errors_until_a_barrier()
        assert [answer.code for answer in answers] == [code]
        assert answers[0].message

        run = submitting.submit(service, "test.echo", value=1)
        (start,) = await worker.expect(directives.StartRoutine, 1)
        await worker.ws.send_str(directives.encode_batch(rawworkers.reports(worker, start)))
        await all_succeeded(service, [run])


async def test_a_batch_over_the_frame_limit_is_taken_but_a_directive_over_it_is_refused(
    service: serving.DirectiveService,
) -> None:
    async with rawworkers.connected(service, "logger", batching=True, slots=1) as worker:
        run = submitting.submit(service, "test.echo", value=1)
        (start,) = await worker.expect(directives.StartRoutine, 1)
        starting, completed = rawworkers.reports(worker, start)

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


async def test_each_directive_of_a_batch_counts_in_the_pulses_confirmation(service: serving.DirectiveService) -> None:
    """A pulse confirms how many directives the service read (the worker forgets the reports below it), so a
    batch of ten counts as ten: counted as one frame, the worker would replay nine of them for nothing."""
    async with rawworkers.connected(service, "counted", batching=True, slots=1) as worker:
        status = directives.encode(directives.GivePulse(status="idle"))  # no answer, no effect: only counted
        await worker.ws.send_str(directives.encode_batch([status] * 10))

        def everything_confirmed() -> bool:
            # Sent before a pulse check: the batch of v1.ready, the answers to earlier checks, the ten.
            return any(received == 1 + answered + 10 for received, answered in worker.confirmations)

        await waiting.eventually(everything_confirmed, timeout=TIMEOUT, what="a pulse confirming every directive")
        assert all(received <= 1 + answered + 10 for received, answered in worker.confirmations)


def log_line(run_id: directives.RunID, message: str, *, n: int) -> str:
    return directives.encode(directives.Log(run_id=run_id, message=message, time=directives.now(), fields={"n": n}))


def size(frame: str) -> int:
    return len(frame.encode())


async def test_in_a_batch_a_log_line_and_a_result_are_measured_in_bytes(service: serving.DirectiveService) -> None:
    """Every directive of a batch is measured as it would be alone, in bytes: a log line short in characters but
    long in bytes is refused, an ASCII one as long is taken, and a result long in bytes fails its run, while the
    other directives of the batch (after it too) are taken."""
    async with rawworkers.connected(service, "measured", batching=True, slots=2) as worker:
        run = submitting.submit(service, "test.echo", value=1)
        other = submitting.submit(service, "test.echo", value=2)
        start = await worker.given(run.run_id)
        starting, _ = rawworkers.reports(worker, start)
        other_starting, other_completed = rawworkers.reports(worker, await worker.given(other.run_id))

        wide = ("€" * 5 + "é") * 1000  # 6,000 characters of 2 or 3 bytes each
        narrow = "x" * len(wide)
        wide_line = log_line(run.run_id, wide, n=-1)
        narrow_lines = [log_line(run.run_id, narrow, n=n) for n in range(8)]
        assert len(wide_line) < MAX_FRAME_BYTES < size(wide_line)
        big = "€" * (MAX_RESULT_BYTES // 3 + 200)
        too_large = directives.encode(
            directives.RoutineCompleted(
                run_id=start.run_id, attempt=start.attempt, result=big, completed_at=directives.now()
            )
        )
        assert len(too_large) < MAX_RESULT_BYTES < size(too_large)
        frames = [
            starting,
            other_starting,
            *narrow_lines[:4],
            wide_line,
            *narrow_lines[4:],
            too_large,
            log_line(other.run_id, narrow, n=0),
            other_completed,
        ]
        batch = directives.encode_batch(frames)
        assert len(frames) <= directives.BATCH_DIRECTIVES
        assert 64 << 10 < size(batch) < directives.MAX_BATCH_BYTES
        await worker.ws.send_str(batch)

        answers = await worker.errors_until_a_barrier()
        assert [(answer.code, answer.in_reply_to) for answer in answers] == [
            (directives.ErrorCode.FRAME_TOO_LARGE, directives.Log.KEY),
            (directives.ErrorCode.RESULT_TOO_LARGE, directives.RoutineCompleted.KEY),
        ]
        assert [(entry.fields["n"], entry.message) for entry in service.store.logs(run.run_id)] == [
            (n, narrow) for n in range(8)
        ]
        assert [entry.message for entry in service.store.logs(other.run_id)] == [narrow]
        failed = await submitting.finished(service, run, timeout=TIMEOUT)
        assert failed.phase is runs.Phase.FAILED
        assert failed.error is not None and failed.error.type == directives.ErrorType.RESULT_TOO_LARGE
        await all_succeeded(service, [other])
        assert service.dispatcher.sessions[worker.worker_id].connected


def too_many(run_id: directives.RunID) -> list[str]:
    """One directive more than a batch frame carries, each small."""
    return [log_line(run_id, "a line", n=n) for n in range(directives.BATCH_DIRECTIVES + 1)]


def too_many_bytes(run_id: directives.RunID) -> list[str]:
    """Ten log lines each under the frame limit, together over the bytes of a batch frame (not in characters)."""
    lines = [log_line(run_id, "€" * 5000, n=n) for n in range(10)]
    assert all(size(line) < MAX_FRAME_BYTES for line in lines)
    assert len(directives.encode_batch(lines)) < directives.MAX_BATCH_BYTES < size(directives.encode_batch(lines))
    return lines


@pytest.mark.parametrize("lines", [too_many, too_many_bytes], ids=["33-directives", "over-MAX_BATCH_BYTES"])
async def test_a_batch_over_the_caps_of_a_batch_frame_is_refused_whole(
    service: serving.DirectiveService, lines: Callable[[directives.RunID], list[str]]
) -> None:
    async with rawworkers.connected(service, "greedy", batching=True, slots=1) as worker:
        run = submitting.submit(service, "test.echo", value=1)
        start = await worker.given(run.run_id)
        starting, completed = rawworkers.reports(worker, start)
        await worker.ws.send_str(starting)
        await worker.ws.send_str(directives.encode_batch(lines(run.run_id)))

        answers = await worker.errors_until_a_barrier()
        assert [(answer.code, answer.in_reply_to) for answer in answers] == [
            (directives.ErrorCode.FRAME_TOO_LARGE, None)
        ]
        assert "none of its directives was taken" in answers[0].message
        assert service.store.logs(run.run_id) == []

        await worker.ws.send_str(directives.encode_batch([log_line(run.run_id, "still here", n=0), completed]))
        await all_succeeded(service, [run])
        assert [entry.message for entry in service.store.logs(run.run_id)] == ["still here"]
        assert service.dispatcher.sessions[worker.worker_id].connected
