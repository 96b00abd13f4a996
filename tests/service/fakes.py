"""Fake workers for the dispatcher's tests: sessions attached over fake connections, without sockets.

Each attached session gets the real writer task, writing into a :class:`FakeSocket` that keeps the frames, so
that a test reads what a worker was sent the way a worker would receive it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import cast

from aiohttp import web

from tests import waiting
from workpath import directives
from workpath_operator.service import aiotasks, dispatching, reporting, runs, sessions


class FakeSocket:
    """Stands for a worker's connection: keeps what the session's writer sends it, one directive per frame (a
    worker that did not ask for batches)."""

    ws_protocol: str | None = None

    def __init__(self) -> None:
        self.frames: list[str] = []

    async def send_str(self, frame: str) -> None:
        self.frames.append(frame)


class FakeWorkers:
    """Attaches fake workers to a dispatcher, hands their reports in, and reads what they were sent."""

    def __init__(self, dispatcher: dispatching.Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.reports = reporting.ReportHandlers(dispatcher)
        self._sockets: dict[directives.WorkerID, FakeSocket] = {}
        self._writers: list[asyncio.Task[None]] = []

    def attach(
        self,
        worker: str,
        *,
        slots: int = 1,
        routines: Iterable[str] = ("*",),
        pool: str = "default",
        running: Iterable[tuple[runs.Run, int]] = (),
        holder: str = "shared-token",
    ) -> sessions.WorkerSession:
        """A worker says ``v1.ready`` on a new connection, holding ``running`` (run, attempt) pairs; ``holder`` is
        the identity that connects (``Identity.holder``)."""
        socket = FakeSocket()
        ws = cast(web.WebSocketResponse, socket)
        ready = directives.Ready(
            worker_id=directives.WorkerID(worker),
            routines=list(routines),
            slots=slots,
            pool=pool,
            running=[directives.HeldRun(run_id=run.run_id, attempt=attempt) for run, attempt in running],
        )
        session = self.dispatcher.roster.attach(ws, ready, holder=holder)
        self._sockets[session.worker_id] = socket
        self._writers.append(asyncio.create_task(session.write(ws), name=f"fake-writer-{worker}"))
        return session

    async def sent(self, session: sessions.WorkerSession) -> list[directives.Payload]:
        """What the worker was sent since the last look."""
        # The writer drains the outbox in one step without suspending: one turn of the loop is enough.
        await asyncio.sleep(0)
        socket = self._sockets[session.worker_id]
        frames = [directives.decode_from_service(frame) for frame in socket.frames]
        socket.frames.clear()
        return frames

    async def starts(self, session: sessions.WorkerSession) -> list[directives.StartRoutine]:
        return [p for p in await self.sent(session) if isinstance(p, directives.StartRoutine)]

    async def next_starts(self, session: sessions.WorkerSession) -> list[directives.StartRoutine]:
        """The runs the worker is sent next, once there are some (after a retry's backoff, a restart's settling)."""
        socket = self._sockets[session.worker_id]

        def sent_a_start() -> bool:
            payloads = map(directives.decode_from_service, socket.frames)
            return any(isinstance(payload, directives.StartRoutine) for payload in payloads)

        await waiting.eventually(sent_a_start, what=f"a run to be sent to {session.worker_id}")
        return await self.starts(session)

    def complete(self, session: sessions.WorkerSession, start: directives.StartRoutine) -> None:
        """The worker starts and completes the attempt, with its params as the result."""
        self.reports.starting(
            session,
            directives.RoutineStarting(
                run_id=start.run_id, attempt=start.attempt, worker_id=session.worker_id, started_at=directives.now()
            ),
        )
        self.reports.completed(
            session,
            directives.RoutineCompleted(
                run_id=start.run_id, attempt=start.attempt, result=start.params, completed_at=directives.now()
            ),
            size=10,
        )

    async def close(self) -> None:
        await aiotasks.cancel_and_wait(self._writers)


def spec(routine: str = "a.b", **fields: object) -> runs.RunSpec:
    """A run's spec as a Routine or the HTTP API would give it (camelCase ``fields``)."""
    return runs.RunSpec.model_validate({"routineID": routine, **fields})


def restored(phase: runs.Phase, *, worker: str | None, attempt: int) -> runs.Run:
    """A run as a restarted service reads it back from its store."""
    return runs.Run(
        run_id=runs.new_run_id(),
        spec=spec(),
        created_at=directives.now(),
        phase=phase,
        worker=directives.WorkerID(worker) if worker else None,
        attempt=attempt,
    )
