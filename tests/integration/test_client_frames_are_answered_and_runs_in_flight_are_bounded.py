"""The clients' socket, frame by frame: a bad frame is answered with ``v1.client.error`` (and the connection serves
on), a frame over the limit names the requests it held, and a connection over its runs in flight is not read until
runs finish (backpressure: its later frames wait, none is lost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration import fleets
from workpath import directives
from workpath.clients import frames
from workpath_operator.service import serving, settings

Socket = aiohttp.ClientWebSocketResponse


@pytest.fixture
def service_settings() -> settings.ServiceSettings:
    return settings.ServiceSettings(
        host="127.0.0.1",
        port=0,
        token=fleets.TOKEN,
        max_client_runs_in_flight=3,
        max_frame_bytes=4096,
        max_params_bytes=1024,
    )


@pytest.fixture
async def socket(service: serving.DirectiveService) -> AsyncIterator[Socket]:
    headers = {"Authorization": f"Bearer {fleets.TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(f"{service.http_url}/v1/clients") as ws:
        yield ws


async def answer(ws: Socket, timeout: float = 5.0) -> directives.Payload:
    message = await ws.receive(timeout)
    return frames.decode_from_service(message.data)


def submit(*request_ids: int, routine_id: str = "nobody.serves_this") -> str:
    spec = frames.encode_spec(frames.RunSpec(routine_id=directives.RoutineID(routine_id)))
    return frames.encode_submit((request_id, spec) for request_id in request_ids)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ('{"payloadKey": "v1.client.explode", "payload": {}}', "unknown_directive"),
        ('{"payloadKey": "v1.client.submit", "payload": {"runs": []}}', "invalid_payload"),
        ('{"payloadKey": "v1.client.read", "payload": {"requestID": 1}}', "invalid_payload"),
        ('{"payloadKey": "v1.ready", "payload": {}}', "unknown_directive"),
    ],
)
async def test_a_bad_frame_is_answered_and_the_connection_serves_on(socket: Socket, frame: str, code: str) -> None:
    await socket.send_str(frame)
    error = await answer(socket)
    assert isinstance(error, frames.Error) and error.code == code, error
    await socket.send_str(directives.encode(frames.Read(request_id=7, run_id=directives.RunID("nope"))))
    unknown = await answer(socket)
    assert isinstance(unknown, frames.Error) and (unknown.code, unknown.request_ids) == ("unknown_run", [7])


async def test_a_frame_over_the_limit_is_refused_naming_its_requests(socket: Socket) -> None:
    await socket.send_str(submit(*range(1, 200)))
    error = await answer(socket)
    assert isinstance(error, frames.Error) and error.code == "frame_too_large"
    assert error.request_ids == list(range(1, 200)) and "--max-frame-bytes" in error.message


async def test_a_connection_over_its_runs_in_flight_is_read_again_only_when_runs_finish(
    service: serving.DirectiveService, socket: Socket
) -> None:
    await socket.send_str(submit(1, 2, 3))  # in flight: 3, the limit: the service stops reading
    accepted = await answer(socket)
    assert isinstance(accepted, frames.Accepted) and [a.request_id for a in accepted.runs] == [1, 2, 3]
    await socket.send_str(submit(4))
    with pytest.raises(asyncio.TimeoutError):
        await answer(socket, timeout=0.3)  # not read
    assert len(service.dispatcher.runs) == 3

    service.dispatcher.cancel(accepted.runs[0].run_id, reason="making room")  # type: ignore[arg-type]
    finished = await answer(socket)
    assert isinstance(finished, frames.Finished) and finished.runs[0].phase == "Cancelled"
    resumed = await answer(socket)
    assert isinstance(resumed, frames.Accepted) and resumed.runs[0].request_id == 4
    assert len(service.dispatcher.runs) == 3
