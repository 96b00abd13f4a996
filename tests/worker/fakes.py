"""A scripted directive service for the worker runtime's tests.

Real sockets on 127.0.0.1, no dispatcher: a test reads the directives a worker
sends (:meth:`FakeConnection.expect`) and sends the ones it wants. The real
service is exercised by tests/integration.

A fake service made with ``batches=True`` chooses the subprotocol
:data:`~workpath.directives.BATCHES` when a worker offers it, and takes each
directive of a batch frame on its own; by default it chooses none, so a worker
sends one directive per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from workpath import directives, errors, settings, working

TOKEN = "unit-test-token"
TIMEOUT = 5.0


class FakeConnection:
    """One worker connection as the service sees it."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.received = 0
        self.frames: asyncio.Queue[directives.Payload] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._pulse_ids = itertools.count(1)

    async def send(self, payload: directives.Payload) -> None:
        await self.ws.send_str(directives.encode(payload))

    async def expect[P: directives.Payload](
        self,
        kind: type[P],
        *,
        skip: tuple[type[directives.Payload], ...] = (directives.Log, directives.GivePulse),
        timeout: float = TIMEOUT,
    ) -> P:
        """The next directive of ``kind``, skipping those of the ``skip`` kinds; fail on any other."""
        async with asyncio.timeout(timeout):
            while True:
                payload = await self.frames.get()
                if isinstance(payload, kind):
                    return payload
                if not isinstance(payload, skip):
                    raise AssertionError(f"expected {kind.__name__}, got {payload!r}")

    async def pulse(self) -> directives.GivePulse:
        """Check the worker's pulse, confirming every frame read so far; return its answer."""
        pulse_id = next(self._pulse_ids)
        await self.send(directives.CheckPulse(id=pulse_id, received=self.received))
        while True:
            answer = await self.expect(directives.GivePulse, skip=(directives.Log,))
            if answer.id == pulse_id:
                return answer

    async def close(self) -> None:
        await self.ws.close()


class FakeService:
    """Accepts worker connections at ``/v1/workers`` with the bearer token ``token`` (:data:`TOKEN`); with
    ``batches``, chooses :data:`~workpath.directives.BATCHES` when the worker offers it."""

    def __init__(self, *, batches: bool = False) -> None:
        self.batches = batches
        self.connections: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self.refuse_with: int | None = None
        self.token = TOKEN
        self.attempts = 0
        self._runner: web.AppRunner | None = None
        self._open: set[FakeConnection] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/workers"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/v1/workers", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for connection in list(self._open):
            with contextlib.suppress(Exception):
                await connection.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def next_connection(self, timeout: float = TIMEOUT) -> FakeConnection:
        async with asyncio.timeout(timeout):
            return await self.connections.get()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts += 1
        if self.refuse_with is not None:
            return web.Response(status=self.refuse_with)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        ws = web.WebSocketResponse(protocols=(directives.BATCHES,) if self.batches else ())
        await ws.prepare(request)
        batching = ws.ws_protocol == directives.BATCHES
        connection = FakeConnection(ws)
        self._open.add(connection)
        self.connections.put_nowait(connection)
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                if batching and directives.is_batch(message.data):
                    for item in directives.decode_batch_from_worker(message.data):
                        if isinstance(item, errors.DirectiveError):
                            raise item
                        connection.received += 1
                        connection.frames.put_nowait(item)
                else:
                    connection.received += 1
                    connection.frames.put_nowait(directives.decode_from_worker(message.data))
        finally:
            self._open.discard(connection)
            connection.closed.set()
        return ws


@contextlib.asynccontextmanager
async def fake_service(*, batches: bool = False) -> AsyncIterator[FakeService]:
    service = FakeService(batches=batches)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def worker_settings(service: FakeService, **overrides: Any) -> settings.WorkerSettings:
    values: dict[str, Any] = {
        "url": service.url,
        "token": TOKEN,
        "worker_id": "unit-worker",
        "slots": 4,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "drain_timeout": 2.0,
        "confirm_timeout": 2.0,
    }
    values.update(overrides)
    return settings.WorkerSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running(worker: working.Worker) -> AsyncIterator[asyncio.Task[int]]:
    """Run ``worker`` in a task; make sure it is gone afterwards."""
    task = asyncio.create_task(worker.run(), name="unit-worker")
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait([task], timeout=TIMEOUT)
        assert task.done(), "the worker did not stop"


def start(routine_id: str, run_id: str = "run-1", *, attempt: int = 1, **params: Any) -> directives.StartRoutine:
    return directives.StartRoutine(
        run_id=directives.RunID(run_id),
        routine_id=directives.RoutineID(routine_id),
        params=params,
        attempt=attempt,
    )
