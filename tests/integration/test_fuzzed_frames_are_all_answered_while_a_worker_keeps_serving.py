"""Fuzzing the workers' socket: over 10,000 random, malformed and oversized frames on one authenticated connection,
before and after it says v1.ready, while a healthy worker keeps running routines. Every bad frame is answered with
v1.error, the fuzzing connection stays up, the service does not crash, and the healthy worker keeps serving."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives, errors
from workpath_operator.service import runs, serving, settings

FRAMES = 10_400
MAX_FRAME_BYTES = 64 << 10
SEED = 20_261_130
#: Decoded and accepted without an answer when well-formed: never sent as a "bad" frame after v1.ready.
SILENT = (directives.GivePulse, directives.CancelSubroutine)


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    """Small frames, so that oversized ones are cheap to send."""
    return service_settings.replace(max_frame_bytes=MAX_FRAME_BYTES, max_params_bytes=16 << 10)


def bad_frames(rng: random.Random, *, ready: bool) -> Iterator[str | bytes]:
    """An endless stream of frames a worker should never send, of many kinds."""
    valid = directives.encode(directives.Ready(worker_id=directives.WorkerID("fuzzer"), routines=["x"], slots=1))
    unknown_run = directives.encode(
        directives.RoutineCompleted(run_id=runs.new_run_id(), attempt=1, result=None, completed_at=directives.now())
    )
    kinds: list[Callable[[], str | bytes]] = [
        lambda: rng.randbytes(rng.randint(0, 300)),
        lambda: "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(1, 200))),
        lambda: valid[: rng.randint(0, len(valid) - 1)],
        lambda: rng.choice(["null", "42", '"ready"', "[]", "{}", "[1,2,3]", "true", "1e999", '{"payloadKey":1}']),
        lambda: json.dumps({"payloadKey": f"v1.{rng.choice(['nope', 'ready2', 'log.x'])}", "payload": {}}),
        lambda: json.dumps({"payloadKey": "v1.ready", "payload": {"workerID": "", "routines": [], "slots": -1}}),
        lambda: json.dumps({"payloadKey": "v1.log", "payload": {"runID": 7, "message": None, "time": "yesterday"}}),
        lambda: "[" * rng.randint(500, 5000) + "]" * rng.randint(0, 10),
        lambda: valid.replace('"slots":1', f'"slots":{rng.choice(["1e9", "-3", '"many"', "null"])}'),
        lambda: unknown_run,
        lambda: directives.encode(
            directives.Log(run_id=runs.new_run_id(), message="x" * rng.randint(1, 400), time=directives.now())
        ),
        lambda: directives.encode(
            directives.Log(
                run_id=runs.new_run_id(),
                message="o" * rng.randint(MAX_FRAME_BYTES, 3 * MAX_FRAME_BYTES),
                time=directives.now(),
            )
        ),
    ]
    weights = [10, 10, 10, 10, 8, 6, 6, 2, 6, 8, 8, 1]
    while True:
        frame = rng.choices(kinds, weights)[0]()
        if ready and _silent(frame):
            continue
        yield frame


def _silent(frame: str | bytes) -> bool:
    try:
        return isinstance(directives.decode_from_worker(frame), SILENT)
    except errors.DirectiveError:
        return False


@pytest.fixture
async def fuzzer(service: serving.DirectiveService) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    headers = {"Authorization": f"Bearer {fleets.TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.ws_connect(service.url, max_msg_size=0, autoping=True) as ws,
    ):
        yield ws


class Throughput:
    """Runs of test.noop the healthy worker finished, counted as they finish."""

    def __init__(self) -> None:
        self.done = 0

    def during(self, seconds: float, since: int) -> float:
        return (self.done - since) / seconds


async def test_every_bad_frame_is_answered_and_the_service_keeps_serving(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, fuzzer: aiohttp.ClientWebSocketResponse
) -> None:
    await fleet.start("healthy", slots=20)
    throughput = Throughput()
    answers: list[directives.Error] = []
    tasks = [
        asyncio.create_task(_keep_busy(service, throughput), name="keep-busy"),
        asyncio.create_task(_read_answers(fuzzer, answers), name="fuzz-answers"),
    ]
    try:
        await asyncio.sleep(1.0)
        baseline = throughput.during(1.0, since=0)
        before, errors_before = throughput.done, service.directive_errors
        rng = random.Random(SEED)
        started = time.perf_counter()
        sent = await _send(fuzzer, bad_frames(rng, ready=False), FRAMES // 2)
        ready = directives.Ready(worker_id=directives.WorkerID("fuzzer"), routines=["fuzz.none"], slots=1)
        await fuzzer.send_str(directives.encode(ready))
        sent += await _send(fuzzer, bad_frames(rng, ready=True), FRAMES - FRAMES // 2)
        await waiting.eventually(lambda: len(answers) >= sent, timeout=30, what=f"{sent} answers")
        seconds = time.perf_counter() - started
        meanwhile = throughput.during(seconds, since=before)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert len(answers) == sent >= 10_000
    assert service.directive_errors - errors_before == sent
    assert not fuzzer.closed
    assert service.dispatcher.sessions[directives.WorkerID("fuzzer")].connected
    assert service.dispatcher.sessions[directives.WorkerID("healthy")].connected
    codes = {answer.code for answer in answers}
    assert {"bad_json", "not_ready", "frame_too_large", "unknown_run", "invalid_payload", "unknown_directive"} <= codes
    print(
        f"\nfuzzed {sent} frames in {seconds:.1f}s ({sent / seconds:.0f}/s): {len(answers)} answered "
        f"({', '.join(sorted(codes))}), 0 crashes; the healthy worker ran {meanwhile:.0f} runs/s meanwhile "
        f"({baseline:.0f}/s before)"
    )
    assert meanwhile > 0
    async with aiohttp.ClientSession() as http, http.get(f"{service.http_url}/healthz") as health:
        assert health.status == 200


async def _keep_busy(service: serving.DirectiveService, throughput: Throughput) -> None:
    """Keep 40 runs of test.noop queued or running on the healthy worker, for ever."""
    while True:
        batch = [submitting.submit(service, "test.noop") for _ in range(40)]
        for run in asyncio.as_completed([service.dispatcher.wait_finished(run) for run in batch]):
            await run
            throughput.done += 1


async def _read_answers(ws: aiohttp.ClientWebSocketResponse, answers: list[directives.Error]) -> None:
    """Keep the answers; answer pulse checks, as a live worker does (else the heartbeat drops the connection)."""
    async for message in ws:
        payload = directives.decode_from_service(message.data)
        if isinstance(payload, directives.Error):
            answers.append(payload)
        elif isinstance(payload, directives.CheckPulse):
            await ws.send_str(directives.encode(directives.GivePulse(id=payload.id, status="idle")))


async def _send(ws: aiohttp.ClientWebSocketResponse, frames: Iterator[str | bytes], count: int) -> int:
    for n, frame in zip(range(count), frames, strict=False):
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        if n % 100 == 0:
            await asyncio.sleep(0)  # let the answers be read
    return count
