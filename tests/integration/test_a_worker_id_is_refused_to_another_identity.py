"""Over real sockets: a connection whose identity differs from the one holding a live worker ID, or whose pod token
announces another pod's name, gets ``v1.error`` ``worker_id_refused`` and is closed; the holder keeps its connection
and its run, which finishes with the holder's result."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration import submitting
from workpath import directives
from workpath_operator.service import authenticating, serving, settings, stores

ACCOUNT = "system:serviceaccount:jobs:worker"
IDENTITIES = {
    "token-of-pod-a": authenticating.Identity(ACCOUNT, kubernetes=True, pod_name="worker-a", pod_uid="uid-a"),
    "token-of-pod-b": authenticating.Identity(ACCOUNT, kubernetes=True, pod_name="worker-b", pod_uid="uid-b"),
    "token-of-the-account": authenticating.Identity(ACCOUNT, kubernetes=True),
}


class TokenTable:
    """Knows a few tokens, as TokenReview would."""

    async def authenticate(self, token: str) -> authenticating.Identity | None:
        return IDENTITIES.get(token)


@pytest.fixture
async def service() -> AsyncIterator[serving.DirectiveService]:
    svc = serving.DirectiveService(
        settings=settings.ServiceSettings(host="127.0.0.1", port=0),
        store=stores.MemoryRunStore(),
        authenticator=TokenTable(),
    )
    async with svc:
        yield svc


def ready(worker_id: str) -> str:
    return directives.encode(directives.Ready(worker_id=directives.WorkerID(worker_id), routines=["*"], slots=4))


async def receive(ws: aiohttp.ClientWebSocketResponse) -> directives.Payload:
    message = await ws.receive(timeout=5)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return directives.decode_from_service(message.data)


async def test_a_live_worker_id_is_refused_to_another_identity_and_its_run_finishes_with_the_holders_result(
    service: serving.DirectiveService,
) -> None:
    async with aiohttp.ClientSession() as http:
        holder = await http.ws_connect(service.url, headers={"Authorization": "Bearer token-of-pod-a"})
        await holder.send_str(ready("worker-a"))
        run = submitting.submit(service, "a.b", n=1)
        start = await receive(holder)
        assert isinstance(start, directives.StartRoutine) and start.run_id == run.run_id

        for token, worker_id in [
            ("token-of-pod-b", "worker-a"),  # another pod: not its name
            ("token-of-the-account", "worker-a"),  # the same account, no pod: held by pod a
        ]:
            intruder = await http.ws_connect(service.url, headers={"Authorization": f"Bearer {token}"})
            await intruder.send_str(ready(worker_id))
            refused = await receive(intruder)
            assert isinstance(refused, directives.Error), refused
            assert (refused.code, refused.in_reply_to) == (directives.ErrorCode.WORKER_ID_REFUSED, "v1.ready")
            closing = await intruder.receive(timeout=5)
            assert closing.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}, closing
            await intruder.close()

        session = service.dispatcher.roster.sessions[directives.WorkerID("worker-a")]
        assert session.connected and set(session.runs) == {run.run_id}
        await holder.send_str(
            directives.encode(
                directives.RoutineCompleted(
                    run_id=run.run_id, attempt=start.attempt, result="from worker-a", completed_at=directives.now()
                )
            )
        )
        done = await submitting.finished(service, run)
        await holder.close()

    assert (done.phase, done.result, done.worker) == ("Succeeded", "from worker-a", "worker-a")
    assert service.directive_errors == 2
