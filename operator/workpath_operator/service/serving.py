"""The directive service: the aiohttp server that workers connect to.

- ``GET /v1/workers``: the workers' WebSocket. The token is checked before the
  upgrade; each frame is decoded straight into its payload model and handed to
  the dispatcher through a table keyed by payload type. A bad frame is answered
  with ``v1.error`` and the connection stays up.
- ``/v1/runs``: submit, read, wait for, cancel runs and read their logs (used by
  ``workpath run`` and ``workpath logs``; same token).
- ``/healthz``, ``/readyz``: probes. ``/metrics``: Prometheus text format.

A heartbeat task sends ``check_pulse`` to every worker each interval; a worker that
leaves ``heartbeat_misses`` pulses unanswered is unresponsive and loses its runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from aiohttp import WSMsgType, web

from workpath import directives, errors
from workpath_operator.service import aiotasks, authenticating, dispatching, runs, sessions, settings, stores

logger = logging.getLogger("workpath.service")

Handler = Callable[[sessions.WorkerSession, Any, int], None]


class DirectiveService:
    """The directive service and the dispatcher behind it, in one event loop."""

    def __init__(
        self,
        *,
        config: settings.ServiceSettings,
        store: stores.RunStore,
        authenticator: authenticating.Authenticator,
    ) -> None:
        self.config = config
        self.store = store
        self.authenticator = authenticator
        self._dispatcher: dispatching.Dispatcher | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self._pulse_ids = itertools.count(1)
        self.port = config.port
        self.directive_errors = 0
        self.app = web.Application(client_max_size=config.max_frame_bytes)
        self.app.router.add_get("/v1/workers", self._worker_socket)
        self.app.router.add_post("/v1/runs", self._submit)
        self.app.router.add_get("/v1/runs/{run_id}", self._read)
        self.app.router.add_delete("/v1/runs/{run_id}", self._cancel)
        self.app.router.add_get("/v1/runs/{run_id}/logs", self._logs)
        self.app.router.add_get("/v1/workers/status", self._workers)
        self.app.router.add_get("/healthz", self._health)
        self.app.router.add_get("/readyz", self._health)
        self.app.router.add_get("/metrics", self._metrics)

    @property
    def dispatcher(self) -> dispatching.Dispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the directive service is not started")
        return self._dispatcher

    @property
    def url(self) -> str:
        """The workers' WebSocket URL."""
        return f"ws://{self.config.host}:{self.port}/v1/workers"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Start the dispatcher (restoring runs from the store) and listen."""
        await self.store.start()
        dispatcher = self._dispatcher = dispatching.Dispatcher(config=self.config, observer=self.store)
        self._handlers: dict[type[directives.Payload], Handler] = {
            directives.RoutineStarting: lambda s, p, n: dispatcher.starting(s, p),
            directives.RoutineCompleted: lambda s, p, n: dispatcher.completed(s, p, size=n),
            directives.RoutineFailed: lambda s, p, n: dispatcher.failed(s, p),
            directives.RequestSubroutine: lambda s, p, n: dispatcher.request(s, p),
            directives.GivePulse: self._pulse,
            directives.Log: lambda s, p, n: dispatcher.log(s, p),
            directives.Released: lambda s, p, n: dispatcher.released(s, p),
            directives.CancelSubroutine: lambda s, p, n: dispatcher.cancel_request(s, p),
            directives.Ready: self._duplicate_ready,
        }
        dispatcher.restore(await self.store.load())
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await self._site.start()
        if self.config.port == 0:
            self.port = self._runner.addresses[0][1]
        self._heartbeat = asyncio.create_task(self._heartbeat_forever(), name="workpath-heartbeat")
        logger.info("directive service listening on %s", self.url)

    async def stop(self) -> None:
        await aiotasks.cancel_and_wait([self._heartbeat])
        self._heartbeat = None
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

    async def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise web.HTTPUnauthorized(
                text="missing bearer token: send 'Authorization: Bearer <token>'\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
        identity = await self.authenticator.authenticate(token.strip())
        if identity is None:
            logger.warning("refused a connection from %s: bad token", request.remote)
            raise web.HTTPUnauthorized(text="token refused\n", headers={"WWW-Authenticate": "Bearer"})
        return identity

    async def _worker_socket(self, request: web.Request) -> web.WebSocketResponse:
        await self._authenticate(request)
        config = self.config
        ws = web.WebSocketResponse(
            max_msg_size=max(config.max_frame_bytes * 4, 16 << 20),
            compress=False,
            timeout=2.0,
            decode_text=False,
        )
        await ws.prepare(request)
        dispatcher = self.dispatcher
        handlers = self._handlers
        decode = directives.decode_from_worker
        loop = asyncio.get_running_loop()
        session: sessions.WorkerSession | None = None
        writer: asyncio.Task[None] | None = None
        budget = config.max_frames_per_second
        window_end = loop.time() + 1.0
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT and message.type is not WSMsgType.BINARY:
                    break
                data: bytes = message.data
                budget -= 1
                if budget <= 0:
                    now = loop.time()
                    if now < window_end:
                        await asyncio.sleep(window_end - now)
                    window_end = loop.time() + 1.0
                    budget = config.max_frames_per_second
                if session is not None:
                    session.received += 1
                try:
                    payload = decode(data)
                    if len(data) > config.max_frame_bytes and type(payload) is not directives.RoutineCompleted:
                        # A result's size is the dispatcher's to judge: it fails that run instead.
                        raise errors.DirectiveError(
                            directives.ErrorCode.FRAME_TOO_LARGE,
                            f"frame of {len(data)} bytes is over the {config.max_frame_bytes} limit",
                            in_reply_to=payload.KEY,
                        )
                    if session is not None:
                        handlers[type(payload)](session, payload, len(data))
                    elif type(payload) is directives.Ready:
                        session, writer = self._attach(ws, payload)
                    else:
                        raise errors.DirectiveError(
                            directives.ErrorCode.NOT_READY,
                            f"the first directive must be v1.ready, not {payload.KEY}",
                            in_reply_to=payload.KEY,
                        )
                except errors.DirectiveError as exc:
                    self._refuse(ws, session, exc)
        finally:
            if session is not None:
                dispatcher.detach(session, ws)
            await aiotasks.cancel_and_wait([writer])
        return ws

    def _attach(
        self, ws: web.WebSocketResponse, ready: directives.Ready
    ) -> tuple[sessions.WorkerSession, asyncio.Task[None]]:
        previous = self.dispatcher.sessions.get(ready.worker_id)
        if previous is not None and previous.ws is not None:
            self._close(previous.ws, b"replaced by a new connection of the same worker")
        session = self.dispatcher.attach(ws, ready)
        session.received = 1
        writer = asyncio.create_task(session.write(ws), name=f"workpath-writer-{ready.worker_id}")
        return session, writer

    def _refuse(
        self, ws: web.WebSocketResponse, session: sessions.WorkerSession | None, exc: errors.DirectiveError
    ) -> None:
        self.directive_errors += 1
        who = session.worker_id if session is not None else "a worker not yet ready"
        logger.warning("directive error from %s: %s: %s", who, exc.code, exc.message)
        frame = directives.encode(directives.Error(code=exc.code, message=exc.message, in_reply_to=exc.in_reply_to))
        if session is not None and session.ws is ws:
            session.send(frame)
        else:
            self._spawn(ws.send_str(frame), "workpath-error-reply")

    def _pulse(self, session: sessions.WorkerSession, pulse: directives.GivePulse, size: int) -> None:
        if pulse.id is not None and pulse.id == session.pending_pulse:
            session.pending_pulse = None
            session.misses = 0
        elif pulse.id is None and pulse.status == "draining" and session.pending_pulse is None:
            self._check_pulse(session)  # confirms its last reports now, so that it can leave at once
        self.dispatcher.set_status(session, pulse.status)

    def _duplicate_ready(self, session: sessions.WorkerSession, ready: directives.Ready, size: int) -> None:
        raise errors.DirectiveError(
            directives.ErrorCode.DUPLICATE_READY,
            f"worker {session.worker_id} already said v1.ready on this connection; reconnect to announce again",
            in_reply_to=ready.KEY,
        )

    async def _heartbeat_forever(self) -> None:
        interval = self.config.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            self.check_pulses()

    def check_pulses(self) -> None:
        """One heartbeat round: count misses, give up on the unresponsive, send new pulses."""
        dispatcher = self.dispatcher
        for session in list(dispatcher.sessions.values()):
            ws = session.ws
            if ws is None:
                continue
            if session.pending_pulse is not None:
                session.misses += 1
                if session.misses >= self.config.heartbeat_misses:
                    dispatcher.lose(session, f"missed {session.misses} heartbeats; it is unresponsive")
                    self._close(ws, b"unresponsive")
                    continue
            self._check_pulse(session)

    def _check_pulse(self, session: sessions.WorkerSession) -> None:
        pulse_id = next(self._pulse_ids)
        session.pending_pulse = pulse_id
        session.send(directives.encode(directives.CheckPulse(id=pulse_id, received=session.received)))

    def _close(self, ws: web.WebSocketResponse, why: bytes) -> None:
        self._spawn(ws.close(code=1001, message=why), "workpath-close")

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------------ runs API

    async def _submit(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        try:
            spec = runs.RunSpec.model_validate_json(await request.read())
        except pydantic.ValidationError as exc:
            raise _bad_request(exc) from None
        run = self.dispatcher.submit(spec)
        return _json(run.status(), status=201)

    def _find(self, request: web.Request) -> runs.Run:
        run_id = directives.RunID(request.match_info["run_id"])
        run = self.dispatcher.get(run_id) or self.store.get(run_id)
        if run is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no run {run_id}"}), content_type="application/json")
        return run

    async def _read(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        run = self._find(request)
        wait = request.query.get("wait")
        if wait and not run.phase.finished:
            try:
                seconds = float(wait)
            except ValueError:
                raise web.HTTPBadRequest(text=f"wait={wait!r} is not a number of seconds") from None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.dispatcher.wait_finished(run)), seconds)
        return _json(run.status())

    async def _cancel(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        run = self._find(request)
        self.dispatcher.cancel(run.run_id, reason=request.query.get("reason", "cancelled by request"))
        return _json(run.status())

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        await self._authenticate(request)
        run = self._find(request)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        if request.query.get("follow") in {"1", "true", "yes"}:
            async for entry in self.store.follow(run.run_id):
                await response.write(entry.model_dump_json().encode() + b"\n")
        else:
            for entry in self.store.logs(run.run_id):
                await response.write(entry.model_dump_json().encode() + b"\n")
        await response.write_eof()
        return response

    async def _workers(self, request: web.Request) -> web.Response:
        await self._authenticate(request)
        body = [
            {
                "workerID": s.worker_id,
                "pool": s.pool,
                "routines": sorted(s.patterns),
                "slots": s.slots,
                "busy": s.busy,
                "connected": s.connected,
                "draining": s.draining,
                "runs": sorted(s.runs),
            }
            for s in self.dispatcher.workers()
        ]
        return web.json_response(body)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        dispatcher = self.dispatcher
        latencies = sorted(dispatcher.dispatch_latencies)
        lines = [
            "# HELP workpath_queue_depth Runs waiting for a worker.",
            "# TYPE workpath_queue_depth gauge",
            f"workpath_queue_depth {dispatcher.queue_depth()}",
            "# HELP workpath_workers_connected Connected workers.",
            "# TYPE workpath_workers_connected gauge",
            f"workpath_workers_connected {sum(1 for s in dispatcher.workers() if s.connected)}",
            "# HELP workpath_runs_active Runs not finished.",
            "# TYPE workpath_runs_active gauge",
            f"workpath_runs_active {len(dispatcher.runs)}",
            "# HELP workpath_directive_errors_total Directives answered with v1.error.",
            "# TYPE workpath_directive_errors_total counter",
            f"workpath_directive_errors_total {self.directive_errors}",
            "# HELP workpath_dispatch_latency_seconds Queued to dispatched, recent dispatches.",
            "# TYPE workpath_dispatch_latency_seconds summary",
        ]
        for q in (0.5, 0.9, 0.99):
            value = latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0
            lines.append(f'workpath_dispatch_latency_seconds{{quantile="{q}"}} {value:.6f}')
        lines.append(f"workpath_dispatch_latency_seconds_count {len(latencies)}")
        described: set[str] = set()
        for name, help_text, value in self.store.metrics():
            family = name.partition("{")[0]
            if family not in described:
                described.add(family)
                kind = "counter" if family.endswith("_total") else "gauge"
                lines += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
            lines.append(f"{name} {value:g}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def _json(view: runs.RunStatus, *, status: int = 200) -> web.Response:
    return web.Response(body=view.model_dump_json(exclude_none=True), status=status, content_type="application/json")


def _bad_request(exc: pydantic.ValidationError) -> web.HTTPBadRequest:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return web.HTTPBadRequest(
        text=json.dumps({"error": "invalid run spec", "problems": problems}), content_type="application/json"
    )
