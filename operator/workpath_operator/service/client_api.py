"""The clients' WebSocket, ``GET /v1/clients``: runs submitted and awaited many at a time (``workpath.Client``).

The protocol is :mod:`workpath.clients.frames`. The connection is authorized as the runs API is
(:mod:`~.http_api`): the bearer token before the upgrade, and in operator mode a namespace on the URL
(``?namespace=NS``, 400 without it) and Kubernetes RBAC on Routines there, asked per frame (cached briefly by
the :class:`~.http_api.Access`): create to submit, get to await or read, delete to cancel. A run is submitted
through the same :meth:`~.http_api.Access.submit` as ``POST /v1/runs``: in operator mode it becomes a Routine.

The read loop is the hot path: one decode per frame (a frame holds many runs), one dispatcher submit and one
waiter per run, and the params limit checked only when the frame is larger than the limit (else no run in it
can be over). Over the in-flight limit the loop stops reading until outcomes bring the connection under it: the
client's writes then wait in TCP, nothing is dropped. A client that disconnects leaves its runs running; it
awaits them again by run ID (``v1.client.await``) on a new connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from workpath import directives, errors
from workpath.clients import frames
from workpath_operator.service import (
    aiotasks,
    client_sessions,
    dispatching,
    gatekeeping,
    http_api,
    limiting,
    runs,
    stores,
)

logger = logging.getLogger("workpath.clients")

Handler = Callable[[client_sessions.ClientSession, Any, int], Awaitable[None]]


class ClientApi:
    """The ``/v1/clients`` route, added to an application by :meth:`mount`."""

    def __init__(self, *, dispatcher: dispatching.Dispatcher, store: stores.RunStore, access: http_api.Access) -> None:
        self._dispatcher = dispatcher
        self._store = store
        self._access = access
        self._sessions: set[client_sessions.ClientSession] = set()
        self._handlers: dict[type[directives.Payload], Handler] = {
            frames.Submit: self._submit,
            frames.Await: self._await,
            frames.Read: self._read_status,
            frames.Cancel: self._cancel,
        }

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/v1/clients", self._socket)
        app.on_shutdown.append(self._close_all)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        identity = await gatekeeping.authenticate(request, self._access.authenticator)
        namespace = request.query.get("namespace") or None
        if self._access.namespaced and namespace is None:
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {
                        "error": "say which namespace: add ?namespace=NS to the URL (workpath.Client: namespace=); "
                        "runs are Routines there, and Kubernetes RBAC on Routines in that namespace decides what "
                        "you may do"
                    }
                ),
                content_type="application/json",
            )
        settings = self._dispatcher.settings
        ws = web.WebSocketResponse(
            max_msg_size=max(settings.max_frame_bytes * 4, 16 << 20), compress=False, timeout=2.0, decode_text=False
        )
        await ws.prepare(request)
        session = client_sessions.ClientSession(
            ws,
            identity=identity,
            namespace=namespace,
            max_in_flight=settings.max_client_runs_in_flight,
            max_frame_bytes=settings.max_frame_bytes,
            transport=request.transport,
        )
        self._sessions.add(session)
        writer = asyncio.create_task(session.write(), name="workpath-client-writer")
        try:
            await self._read(session)
        finally:
            session.close()
            self._sessions.discard(session)
            await aiotasks.cancel_and_wait([writer])
        return ws

    async def _read(self, session: client_sessions.ClientSession) -> None:
        decode = frames.decode_from_client
        handlers = self._handlers
        max_frame_bytes = self._dispatcher.settings.max_frame_bytes
        async for message in session.ws:
            if message.type is not WSMsgType.TEXT and message.type is not WSMsgType.BINARY:
                break
            data: bytes = message.data
            try:
                frame = decode(data)
                if len(data) > max_frame_bytes:
                    raise _too_large(frame, size=len(data), limit=max_frame_bytes)
                await handlers[type(frame)](session, frame, len(data))
            except errors.DirectiveError as exc:
                logger.warning("client frame refused (%s): %s", exc.code, exc.message)
                session.refuse(exc.code, exc.message, request_ids=_request_ids(exc), in_reply_to=exc.in_reply_to)
            if not await session.room():
                break

    async def _close_all(self, app: web.Application) -> None:
        """On shutdown: close the clients' connections (they reconnect and await their runs elsewhere)."""
        sessions = list(self._sessions)
        for session in sessions:
            session.close()
        if sessions:
            await asyncio.gather(
                *(s.ws.close(code=1001, message=b"the service is stopping") for s in sessions), return_exceptions=True
            )

    # ------------------------------------------------------------------ frames

    async def _submit(self, session: client_sessions.ClientSession, frame: frames.Submit, size: int) -> None:
        if not await self._authorized(session, http_api.Verb.CREATE, frame, [s.request_id for s in frame.runs]):
            return
        # No run's params can be over the limit when the whole frame is not: skip re-encoding them.
        check = size > self._dispatcher.settings.max_params_bytes
        if self._access.namespaced:  # each run is a Routine to create: create them concurrently
            admissions = list(await asyncio.gather(*(self._submit_one(session, s, check) for s in frame.runs)))
        else:  # in memory: no await suspends, so no task per run
            admissions = [await self._submit_one(session, s, check) for s in frame.runs]
        session.send(frames.encode_accepted(admissions))

    async def _submit_one(
        self, session: client_sessions.ClientSession, submission: frames.Submission, check: bool
    ) -> str:
        """Submit one run; its admission, encoded."""
        spec = submission.spec
        request_id = submission.request_id
        if check and spec.params:
            refusal = self._params_refusal(spec)
            if refusal is not None:
                return _refused(request_id, frames.ErrorType.PARAMS_TOO_LARGE, refusal)
        try:
            submitted = await self._access.submit(spec, namespace=session.namespace, identity=session.identity)
        except http_api.SubmitError as exc:
            return _refused(request_id, frames.ErrorType.NOT_SUBMITTED, exc.message)
        run = self._dispatcher.get(submitted.run_id)
        if run is not None:
            session.watch(request_id, self._dispatcher.wait_finished(run))
        else:  # not known yet (a Routine the reconciler has not taken): the client awaits it when it reads this
            logger.warning("run %s was submitted but the dispatcher does not know it yet", submitted.run_id)
        routine = submitted.routine
        if routine is None:
            return frames.encode_admission(request_id, submitted.run_id)
        ref = frames.RoutineRef(namespace=routine[0], name=routine[1])
        return frames.Admission(request_id=request_id, run_id=submitted.run_id, routine=ref).model_dump_json()

    def _params_refusal(self, spec: runs.RunSpec) -> str | None:
        limit = self._dispatcher.settings.max_params_bytes
        refusal = limiting.params_refusal(spec.routine_id, spec.params, limit=limit)
        if refusal is not None:
            self._dispatcher.breaches.count(limiting.Limit.PARAMS_BYTES)
        return refusal

    async def _await(self, session: client_sessions.ClientSession, frame: frames.Await, size: int) -> None:
        if not await self._authorized(session, http_api.Verb.GET, frame, [r.request_id for r in frame.runs]):
            return
        unknown: list[frames.AwaitedRun] = []
        for awaited in frame.runs:
            run = self._find(session, awaited.run_id)
            if run is None:
                unknown.append(awaited)
            else:
                session.watch(awaited.request_id, self._dispatcher.wait_finished(run))
        if unknown:
            session.refuse(
                frames.ErrorCode.UNKNOWN_RUN,
                self._unknown(session, ", ".join(a.run_id for a in unknown)),
                request_ids=[a.request_id for a in unknown],
                in_reply_to=frame.KEY,
            )

    async def _read_status(self, session: client_sessions.ClientSession, frame: frames.Read, size: int) -> None:
        if await self._authorized(session, http_api.Verb.GET, frame, [frame.request_id]):
            self._answer_status(session, frame)

    async def _cancel(self, session: client_sessions.ClientSession, frame: frames.Cancel, size: int) -> None:
        if not await self._authorized(session, http_api.Verb.DELETE, frame, [frame.request_id]):
            return
        self._dispatcher.cancel(frame.run_id, reason=frame.reason)
        self._answer_status(session, frame)

    # ------------------------------------------------------------------ helpers

    def _answer_status(self, session: client_sessions.ClientSession, frame: frames.Read | frames.Cancel) -> None:
        run = self._find(session, frame.run_id)
        if run is None:
            session.refuse(
                frames.ErrorCode.UNKNOWN_RUN,
                self._unknown(session, frame.run_id),
                request_ids=[frame.request_id],
                in_reply_to=frame.KEY,
            )
            return
        routine = None
        if self._access.namespaced and run.key is not None:
            namespace, _, name = run.key.partition("/")
            routine = frames.RoutineRef(namespace=namespace, name=name)
        status = frames.Status(request_id=frame.request_id, status=run.status(), routine=routine)
        session.send(directives.encode(status))

    async def _authorized(
        self, session: client_sessions.ClientSession, verb: http_api.Verb, frame: directives.Payload, ids: list[int]
    ) -> bool:
        refusal = await self._access.authorize(session.identity, verb=verb, namespace=session.namespace)
        if refusal is None:
            return True
        session.refuse(frames.ErrorCode.FORBIDDEN, refusal, request_ids=ids, in_reply_to=frame.KEY)
        return False

    def _find(self, session: client_sessions.ClientSession, run_id: directives.RunID) -> runs.Run | None:
        run = self._dispatcher.get(run_id) or self._store.get(run_id)
        if run is not None and self._access.namespaced and (run.key or "").partition("/")[0] != session.namespace:
            return None  # another namespace's run is not there: the caller learns nothing of it
        return run

    def _unknown(self, session: client_sessions.ClientSession, what: str) -> str:
        where = f" in namespace {session.namespace}" if self._access.namespaced else ""
        return f"no run {what}{where} (the service keeps finished runs for a while only)"


def _refused(request_id: int, type: str, message: str) -> str:
    error = directives.ErrorInfo(type=type, message=message)
    return frames.Admission(request_id=request_id, error=error).model_dump_json()


class _FrameTooLarge(errors.DirectiveError):
    """A frame over the limit, with the request IDs it held (so the client can fail just those)."""

    def __init__(self, message: str, *, in_reply_to: str, request_ids: list[int]) -> None:
        super().__init__(directives.ErrorCode.FRAME_TOO_LARGE, message, in_reply_to=in_reply_to)
        self.request_ids = request_ids


def _too_large(frame: directives.Payload, *, size: int, limit: int) -> errors.DirectiveError:
    ids: list[int] = []
    if isinstance(frame, frames.Submit | frames.Await):
        ids = [entry.request_id for entry in frame.runs]
    elif isinstance(frame, frames.Read | frames.Cancel):
        ids = [frame.request_id]
    return _FrameTooLarge(
        f"frame of {size} bytes is over the {limit} limit (the service's --max-frame-bytes): send fewer runs per frame",
        in_reply_to=frame.KEY,
        request_ids=ids,
    )


def _request_ids(exc: errors.DirectiveError) -> list[int]:
    return exc.request_ids if isinstance(exc, _FrameTooLarge) else []
