"""The cluster target's one watch, against a stand-in API server: runs awaited are resolved by the list that starts
it and by the events that follow; when the resourceVersion it resumes from has expired (410 Gone) it lists again,
resolving the runs that finished meanwhile and cancelling those whose Routine is gone, then watches from the new
list's resourceVersion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import kubernetes_asyncio.client
import pytest
from aiohttp import web

from workpath import directives
from workpath.clients import apiservers, frames, watching

PATH = "/apis/workpath.dev/v1alpha1/namespaces/ns/routines"
A, B, C = (directives.RunID(f"00000000-0000-0000-0000-00000000000{n}") for n in (1, 2, 3))


def routine(uid: str, phase: str | None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"r-{uid[-1]}", "namespace": "ns", "uid": uid, "resourceVersion": "1"},
        "spec": {"routineID": "k8s.sized"},
        "status": {"phase": phase, **status} if phase else {},
    }


class StandIn:
    """Lists and watches as scripted: the first list sees A and B running and its watch expires (410); the second
    list sees A succeeded, B gone and C running; its watch sends a bookmark, then (once released) C's failure, and
    stays open."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.lists = 0
        self.release = asyncio.Event()
        self.closing = asyncio.Event()

    async def routines(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        if request.query.get("watch") != "1":
            self.lists += 1
            items = (
                [routine(A, "Running"), routine(B, "Running")]
                if self.lists == 1
                else [
                    routine(A, "Succeeded", result=1),
                    routine(C, "Running"),
                ]
            )
            return web.json_response({"metadata": {"resourceVersion": f"{self.lists}0"}, "items": items})
        response = web.StreamResponse()
        await response.prepare(request)
        if request.query["resourceVersion"] == "10":
            await self.send(response, {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
            return response
        await self.send(response, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "25"}}})
        await self.release.wait()
        await self.send(
            response, {"type": "MODIFIED", "object": routine(C, "Failed", error={"type": "E", "message": "m"})}
        )
        await self.closing.wait()
        return response

    @staticmethod
    async def send(response: web.StreamResponse, event: dict[str, Any]) -> None:
        await response.write(json.dumps(event).encode() + b"\n")


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    server = StandIn()
    app = web.Application()
    app.router.add_get(PATH, server.routines)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield server, f"http://127.0.0.1:{port}"
    server.closing.set()
    await runner.cleanup()


async def test_an_expired_watch_lists_again_and_judges_the_runs_awaited(stand_in: tuple[StandIn, str]) -> None:
    server, url = stand_in
    configuration = kubernetes_asyncio.client.Configuration(host=url)
    credentials = apiservers.Credentials(server=url, namespace="ns", source="a stand-in", configuration=configuration)
    api = apiservers.ApiServer(credentials)
    await api.open()
    watch = watching.RoutineWatch(api, "ns", refused=lambda exc: exc, seconds=60)
    loop = asyncio.get_running_loop()
    outcomes = {run_id: loop.create_future() for run_id in (A, B)}
    try:
        for run_id, future in outcomes.items():
            watch.attach(run_id, future)
        async with asyncio.timeout(5):
            succeeded, gone = await asyncio.gather(outcomes[A], outcomes[B])
            assert (succeeded.phase, succeeded.result) == (frames.Phase.SUCCEEDED, 1)
            assert gone.phase is frames.Phase.CANCELLED and gone.error is not None
            assert gone.error.type == "RoutineDeleted" and "while the client's watch was away" in gone.error.message
            failed: asyncio.Future[frames.Outcome] = loop.create_future()
            watch.attach(C, failed)
            server.release.set()
            outcome = await failed
        assert outcome.phase is frames.Phase.FAILED and outcome.error == directives.ErrorInfo(type="E", message="m")
        watches = [query for query in server.requests if query.get("watch") == "1"]
        assert [query["resourceVersion"] for query in watches] == ["10", "20"]
        assert server.lists == 2 and watch.watches == 2
    finally:
        await watch.close()
        await api.close()
