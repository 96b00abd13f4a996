"""Bad input gets a clear v1.error (or 401), is logged, and the connection and the runs survive it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives
from workpath_operator.service import runs, serving

AUTH = {"Authorization": f"Bearer {fleets.TOKEN}"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def receive[P: directives.Payload](ws: aiohttp.ClientWebSocketResponse, kind: type[P]) -> P:
    """The next directive of ``kind``; pulses met on the way are answered, others skipped."""
    while True:
        message = await ws.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        payload = directives.decode_from_service(message.data)
        if isinstance(payload, kind):
            return payload
        if isinstance(payload, directives.CheckPulse):
            await ws.send_str(directives.encode(directives.GivePulse(id=payload.id)))


def ready(worker_id: str, *, slots: int = 1, routines: tuple[str, ...] = ("test.*",)) -> str:
    return directives.encode(
        directives.Ready(worker_id=directives.WorkerID(worker_id), routines=list(routines), slots=slots)
    )


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": fleets.TOKEN}])
async def test_a_connection_without_the_right_token_is_refused_before_any_directive(
    service: serving.DirectiveService, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await http.ws_connect(service.url, headers=headers)
    assert caught.value.status == 401
    assert service.dispatcher.sessions == {}


async def test_malformed_directives_get_v1_error_and_the_connection_stays_up(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(service.url, headers=AUTH) as ws:
        await ws.send_str(directives.encode(directives.GivePulse(status="idle")))
        error = await receive(ws, directives.Error)
        assert (error.code, error.in_reply_to) == (directives.ErrorCode.NOT_READY, "v1.heartbeat.give_pulse")

        await ws.send_str(ready("raw"))
        cases = [
            ("{oops", directives.ErrorCode.BAD_JSON, None),
            ('{"payloadKey": "v1.teleport", "payload": {}}', directives.ErrorCode.UNKNOWN_DIRECTIVE, "v1.teleport"),
            (
                '{"payloadKey": "v1.routine.starting", "payload": {"runID": 5}}',
                directives.ErrorCode.INVALID_PAYLOAD,
                "v1.routine.starting",
            ),
            (ready("raw"), directives.ErrorCode.DUPLICATE_READY, "v1.ready"),
            (
                directives.encode(
                    directives.RoutineCompleted(run_id=directives.RunID("nope"), completed_at=directives.now())
                ),
                directives.ErrorCode.UNKNOWN_RUN,
                "v1.routine.completed",
            ),
            (
                json.dumps(
                    {
                        "payloadKey": "v1.log",
                        "payload": {"runID": "x", "message": "x" * (2 << 20), "time": "2026-01-01T00:00:00Z"},
                    }
                ),
                directives.ErrorCode.FRAME_TOO_LARGE,
                "v1.log",
            ),
        ]
        for frame, code, in_reply_to in cases:
            await ws.send_str(frame)
            error = await receive(ws, directives.Error)
            assert (error.code, error.in_reply_to) == (code, in_reply_to), error
            assert error.message

        # Still connected and still a worker: it gets and finishes a run.
        run = submitting.submit(service, "test.echo", value=1)
        start = await receive(ws, directives.StartRoutine)
        assert start.run_id == run.run_id
        await ws.send_str(
            directives.encode(
                directives.RoutineCompleted(run_id=run.run_id, result="ok", completed_at=directives.now())
            )
        )
        done = await submitting.finished(service, run)
        assert (done.phase, done.result) == (runs.Phase.SUCCEEDED, "ok")
    assert service.directive_errors >= len(cases) + 1


async def test_a_report_for_a_stale_attempt_is_refused_and_changes_nothing(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(service.url, headers=AUTH) as first:
        await first.send_str(ready("first"))
        await waiting.eventually(lambda: "first" in service.dispatcher.sessions, what="'first' to be ready")
        run = submitting.submit(service, "test.echo", value=1)
        old = await receive(first, directives.StartRoutine)
        # 'first' is not read from any more, so it answers no pulse: it is declared unresponsive and the run
        # moves on to 'second', which answers its pulses while it waits.
        async with http.ws_connect(service.url, headers=AUTH) as second:
            await second.send_str(ready("second"))
            new = await receive(second, directives.StartRoutine)
            assert new.run_id == run.run_id and new.attempt == old.attempt + 1

            async with http.ws_connect(service.url, headers=AUTH) as again:
                held = directives.HeldRun(run_id=run.run_id, attempt=old.attempt)
                await again.send_str(
                    directives.encode(
                        directives.Ready(
                            worker_id=directives.WorkerID("first"), routines=["test.*"], slots=1, running=[held]
                        )
                    )
                )
                cancel = await receive(again, directives.CancelRoutine)
                assert cancel.run_id == run.run_id
                await again.send_str(
                    directives.encode(
                        directives.RoutineCompleted(
                            run_id=run.run_id, attempt=old.attempt, result="stale", completed_at=directives.now()
                        )
                    )
                )
                error = await receive(again, directives.Error)
                assert error.code == directives.ErrorCode.STALE_ATTEMPT
                assert run.result is None and run.worker == "second"

            await second.send_str(
                directives.encode(
                    directives.RoutineCompleted(
                        run_id=run.run_id, attempt=new.attempt, result="fresh", completed_at=directives.now()
                    )
                )
            )
            done = await submitting.finished(service, run)
            assert (done.phase, done.result, done.worker) == (runs.Phase.SUCCEEDED, "fresh", "second")


async def test_a_routine_no_worker_can_run_stays_queued_then_fails_after_its_timeout(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    body = {"routineID": "nobody.has.this", "params": {}, "timeoutSeconds": 0.5}
    async with http.post(f"{service.http_url}/v1/runs", json=body, headers=AUTH) as response:
        assert response.status == 201
        created = await response.json()
    assert created["phase"] == "Pending"
    async with http.get(f"{service.http_url}/v1/runs/{created['runID']}", headers=AUTH) as response:
        assert (await response.json())["phase"] == "Pending"  # visible while it waits
    async with http.get(
        f"{service.http_url}/v1/runs/{created['runID']}", params={"wait": "10"}, headers=AUTH
    ) as response:
        status = await response.json()
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "QueueTimeoutError"
    assert "nobody.has.this" in status["error"]["message"]


async def test_an_invalid_run_request_is_refused_with_the_reason(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{service.http_url}/v1/runs", json={"routineID": "not valid!"}, headers=AUTH) as response:
        assert response.status == 400
        body = await response.json()
    assert body["problems"][0]["field"] == "routineID"
    async with http.post(f"{service.http_url}/v1/runs", json={"routineID": "a.b"}) as response:
        assert response.status == 401
    assert service.dispatcher.runs == {}
