"""The directive service: the aiohttp server that workers connect to.

- ``GET /v1/workers``: the workers' WebSocket. The token is checked before the
  upgrade; the worker ID of the first ``v1.ready`` must be the caller's to claim (its
  pod's name for a pod's token; not held by another identity), else the connection
  gets ``v1.error`` (``worker_id_refused``) and is closed, changing nothing. Each
  frame is decoded straight into its payload model and handed on through a table
  keyed by payload type. A bad frame is answered with ``v1.error`` and the
  connection stays up. This loop is the hot path: one decode,
  one size check, one dict lookup per frame.
- ``/v1/runs...``, ``/v1/workers/status``: the HTTP API (:mod:`~.http_api`).
- ``GET /v1/clients``: the clients' WebSocket, many runs submitted and awaited at once (:mod:`~.client_api`).
- ``/healthz``, ``/readyz``: probes. ``/metrics``: the families of :attr:`DirectiveService.measures` in
  Prometheus' formats (:mod:`~.metrics`, loaded on the first scrape: prometheus-client is in the operator extra).

The heartbeat (:mod:`~.heartbeating`) runs beside it as a guarded task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from workpath import directives, errors
from workpath_operator.service import (
    aiotasks,
    authenticating,
    client_api,
    dispatching,
    gatekeeping,
    heartbeating,
    http_api,
    measures,
    metering,
    reporting,
    sessions,
    settings,
    stores,
)

if TYPE_CHECKING:
    from workpath_operator.service import metrics

logger = logging.getLogger("workpath.service")

Handler = Callable[[sessions.WorkerSession, Any, int], None]


class DirectiveService:
    """The directive service and the dispatcher behind it, in one event loop."""

    def __init__(
        self,
        *,
        settings: settings.ServiceSettings,
        store: stores.RunStore,
        authenticator: authenticating.Authenticator,
        access: http_api.Access | None = None,
    ) -> None:
        """``authenticator`` checks the workers; ``access`` guards the runs API (by default
        :class:`~.http_api.LocalAccess`: the workers' authenticator, anything allowed, runs in memory)."""
        self.settings = settings
        self.store = store
        self.authenticator = authenticator
        self._access = access
        self._dispatcher: dispatching.Dispatcher | None = None
        self._heartbeat: heartbeating.Heartbeat | None = None
        self._handlers: dict[type[directives.Payload], Handler] = {}
        self._runner: web.AppRunner | None = None
        self._beating: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self.port = settings.port
        #: The families shown at ``/metrics``; other parts (the store, the WorkerPools) add theirs.
        self.measures = measures.Board()
        self._directive_errors = metering.directive_errors(self.measures)
        metering.add_dispatcher(self.measures, lambda: self.dispatcher)
        store.add_measures(self.measures)
        self._exposition: metrics.Exposition | None = None
        self.app = web.Application(client_max_size=settings.max_frame_bytes)
        self.app.router.add_get("/v1/workers", self._worker_socket)
        self.app.router.add_get("/healthz", self._health)
        self.app.router.add_get("/readyz", self._health)
        self.app.router.add_get("/metrics", self._metrics)

    @property
    def dispatcher(self) -> dispatching.Dispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the directive service is not started")
        return self._dispatcher

    @property
    def heartbeat(self) -> heartbeating.Heartbeat:
        if self._heartbeat is None:
            raise RuntimeError("the directive service is not started")
        return self._heartbeat

    @property
    def url(self) -> str:
        """The workers' WebSocket URL."""
        return f"ws://{self.settings.host}:{self.port}/v1/workers"

    @property
    def directive_errors(self) -> int:
        """Directives answered with ``v1.error`` so far (by code at ``/metrics``)."""
        return sum(self._directive_errors.values())

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Start the dispatcher (restoring runs from the store) and listen."""
        await self.store.start()
        dispatcher = self._dispatcher = dispatching.Dispatcher(settings=self.settings, observer=self.store)
        heartbeat = self._heartbeat = heartbeating.Heartbeat(
            roster=dispatcher.roster, store=self.store, settings=self.settings, close=self._close
        )
        self._handlers = _handlers(dispatcher, heartbeat, duplicate_ready=self._duplicate_ready)
        access = self._access or http_api.LocalAccess(self.authenticator, dispatcher=dispatcher)
        http_api.HttpApi(dispatcher=dispatcher, store=self.store, access=access).mount(self.app.router)
        client_api.ClientApi(dispatcher=dispatcher, store=self.store, access=access).mount(self.app)
        dispatcher.restore(await self.store.load())
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        if self.settings.port == 0:
            self.port = self._runner.addresses[0][1]
        self._beating = asyncio.create_task(heartbeat.beat_forever(), name="workpath-heartbeat")
        logger.info("directive service listening on %s", self.url)

    async def stop(self) -> None:
        await aiotasks.cancel_and_wait([self._beating])
        self._beating = None
        if self._runner is not None:
            await self._disconnect_workers()
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._closing):
            task.cancel()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.store.close()

    async def _disconnect_workers(self) -> None:
        """Close the workers' connections (else the server waits for them to end); they reconnect elsewhere."""
        sockets = [s.ws for s in self.dispatcher.workers() if s.ws is not None] if self._dispatcher else []
        if sockets:
            await asyncio.gather(
                *(ws.close(code=1001, message=b"the service is stopping") for ws in sockets), return_exceptions=True
            )

    async def __aenter__(self) -> DirectiveService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------- worker socket

    async def _worker_socket(self, request: web.Request) -> web.WebSocketResponse:
        identity = await gatekeeping.authenticate(request, self.authenticator)
        settings = self.settings
        ws = web.WebSocketResponse(
            max_msg_size=max(settings.max_frame_bytes * 4, 16 << 20),
            compress=False,
            timeout=2.0,
            decode_text=False,
            protocols=(directives.BATCHES,),
        )
        await ws.prepare(request)
        batching = ws.ws_protocol == directives.BATCHES
        roster = self.dispatcher.roster
        handlers = self._handlers
        decode = directives.decode_from_worker
        max_frame_bytes = settings.max_frame_bytes
        small_limit = min(max_frame_bytes, settings.max_result_bytes)
        loop = asyncio.get_running_loop()
        session: sessions.WorkerSession | None = None
        writer: asyncio.Task[None] | None = None
        budget = settings.max_frames_per_second
        window_end = loop.time() + 1.0
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT and message.type is not WSMsgType.BINARY:
                    break
                data: bytes = message.data
                frame_size = len(data)
                batch = batching and directives.is_batch(data)
                items: Sequence[directives.Payload | errors.DirectiveError] = (
                    directives.decode_batch_from_worker(data) if batch else (_decoded(decode, data),)
                )
                budget -= len(items)
                while budget <= 0:  # a batch may overdraw the budget: the next window pays it back
                    now = loop.time()
                    if now < window_end:
                        await asyncio.sleep(window_end - now)
                    window_end = max(window_end, loop.time()) + 1.0
                    budget += settings.max_frames_per_second
                for payload in items:
                    if session is not None:
                        session.frame_received()
                    try:
                        if isinstance(payload, errors.DirectiveError):
                            raise payload
                        size = frame_size
                        if batch and (size > small_limit or type(payload) is directives.Log):
                            # A directive of a batch is at most the frame's size; it is measured on its own
                            # where that bound could pass a limit, and for log lines (their bytes are counted).
                            size = _size(payload)
                        if size > max_frame_bytes and type(payload) is not directives.RoutineCompleted:
                            # A result's size is the dispatcher's to judge: it fails that run instead.
                            raise errors.DirectiveError(
                                directives.ErrorCode.FRAME_TOO_LARGE,
                                f"frame of {size} bytes is over the {max_frame_bytes} limit",
                                in_reply_to=payload.KEY,
                            )
                        if session is not None:
                            handlers[type(payload)](session, payload, size)
                        elif type(payload) is directives.Ready:
                            session, writer = self._attach(ws, payload, identity)
                        else:
                            raise errors.DirectiveError(
                                directives.ErrorCode.NOT_READY,
                                f"the first directive must be v1.ready, not {payload.KEY}",
                                in_reply_to=payload.KEY,
                            )
                    except errors.DirectiveError as exc:
                        if exc.code == directives.ErrorCode.WORKER_ID_REFUSED:
                            await self._turn_away(ws, identity, exc)
                            return ws
                        self._refuse(ws, session, exc)
        finally:
            if session is not None:
                roster.detach(session, ws)
            await aiotasks.cancel_and_wait([writer])
        return ws

    def _attach(
        self, ws: web.WebSocketResponse, ready: directives.Ready, identity: authenticating.Identity
    ) -> tuple[sessions.WorkerSession, asyncio.Task[None]]:
        """Join (or start) the worker's session; a worker ID that is not the caller's raises before any change."""
        gatekeeping.check_worker_id(identity, ready.worker_id)
        roster = self.dispatcher.roster
        previous = roster.sessions.get(ready.worker_id)
        replaced = previous.ws if previous is not None else None
        session = roster.attach(ws, ready, holder=identity.holder)
        if replaced is not None and replaced is not ws:
            self._close(replaced, b"replaced by a new connection of the same worker")
        writer = asyncio.create_task(session.write(ws), name=f"workpath-writer-{ready.worker_id}")
        return session, writer

    def _refuse(
        self, ws: web.WebSocketResponse, session: sessions.WorkerSession | None, exc: errors.DirectiveError
    ) -> None:
        self._directive_errors[(str(exc.code),)] += 1
        who = session.worker_id if session is not None else "a worker not yet ready"
        logger.warning("directive error from %s: %s: %s", who, exc.code, exc.message)
        frame = directives.encode(directives.Error(code=exc.code, message=exc.message, in_reply_to=exc.in_reply_to))
        if session is not None and session.ws is ws:
            session.send(frame)
        else:
            self._spawn(ws.send_str(frame), "workpath-error-reply")

    async def _turn_away(
        self, ws: web.WebSocketResponse, identity: authenticating.Identity, exc: errors.DirectiveError
    ) -> None:
        """Refuse a connection's worker ID: ``v1.error``, then close it (it never had a session)."""
        self._directive_errors[(str(exc.code),)] += 1
        logger.warning("refused a worker connection of %s: %s", identity, exc.message)
        frame = directives.encode(directives.Error(code=exc.code, message=exc.message, in_reply_to=exc.in_reply_to))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(frame)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"worker ID refused")

    def _duplicate_ready(self, session: sessions.WorkerSession, ready: directives.Ready, size: int) -> None:
        raise errors.DirectiveError(
            directives.ErrorCode.DUPLICATE_READY,
            f"worker {session.worker_id} already said v1.ready on this connection; reconnect to announce again",
            in_reply_to=ready.KEY,
        )

    def _close(self, ws: web.WebSocketResponse, why: bytes) -> None:
        self._spawn(ws.close(code=1001, message=why), "workpath-close")

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------------ probes

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._exposition is None:
            try:
                from workpath_operator.service import metrics  # prometheus-client: the operator extra
            except ModuleNotFoundError:
                why = "/metrics needs prometheus-client, from the operator extra: pip install workpath[operator]\n"
                return web.Response(status=501, text=why)
            self._exposition = metrics.Exposition(self.measures)
        body, content_type = self._exposition.render(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})


def _decoded(decode: Callable[[bytes], directives.Payload], data: bytes) -> directives.Payload | errors.DirectiveError:
    """The directive of a one-directive frame, or why it is not one."""
    try:
        return decode(data)
    except errors.DirectiveError as exc:
        return exc


def _size(payload: directives.Payload) -> int:
    """The size in bytes of one directive of a batch, as it would be alone in a frame."""
    try:
        return len(directives.encode(payload).encode())
    except ValueError as exc:  # pydantic cannot write it back (it read it, within the parser's limits)
        raise errors.DirectiveError(
            directives.ErrorCode.INVALID_PAYLOAD, f"invalid {payload.KEY} payload: {exc}", in_reply_to=payload.KEY
        ) from None


def _handlers(
    dispatcher: dispatching.Dispatcher, heartbeat: heartbeating.Heartbeat, *, duplicate_ready: Handler
) -> dict[type[directives.Payload], Handler]:
    """The table from a worker's payload type to its handler, once the session is ready."""
    reports = reporting.ReportHandlers(dispatcher)
    tree = dispatcher.subroutines
    return {
        directives.RoutineStarting: lambda s, p, n: reports.starting(s, p),
        directives.RoutineCompleted: lambda s, p, n: reports.completed(s, p, size=n),
        directives.RoutineFailed: lambda s, p, n: reports.failed(s, p),
        directives.RequestSubroutine: lambda s, p, n: tree.request(s, p, size=n),
        directives.GivePulse: heartbeat.pulse_given,
        directives.Log: lambda s, p, n: reports.log(s, p, size=n),
        directives.Released: lambda s, p, n: reports.released(s, p),
        directives.CancelSubroutine: lambda s, p, n: tree.cancel_request(s, p),
        directives.Ready: duplicate_ready,
    }
