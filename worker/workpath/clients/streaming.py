"""The service target: runs streamed over one WebSocket to the directive service's ``/v1/clients``.

:class:`ServiceTarget` multiplexes every request of a client over one connection (:mod:`~.frames`): runs are
submitted in frames of up to ``batch`` runs, each answered by one ``accepted`` frame; outcomes come back many to a
frame as runs finish. One writer task drains an outbox, so nothing that sends awaits; one reader task resolves
futures by request ID. Log lines are read over HTTP (``GET /v1/runs/ID/logs``, NDJSON).

When the connection is lost the target reconnects (with backoff) and awaits again, by run ID, every run it was
waiting for: runs go on in the service meanwhile. Submissions not yet answered when it was lost fail with
:class:`~workpath.errors.ClientError` (the service may or may not have started them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

import aiohttp

from workpath import directives, errors
from workpath.clients import frames, targets

logger = logging.getLogger("workpath.client")

Socket = aiohttp.ClientWebSocketResponse[Literal[False]]

#: Runs per ``submit`` frame: large enough that a frame's cost is spread thin, small enough to stay far below
#: the service's frame limit for ordinary params (the service refuses a frame over it, naming the limit).
BATCH = 500
_BACKOFF_CAP = 5.0


class ServiceTarget:
    """The directive service's clients' WebSocket at ``url`` (``http://host:port``); see the module.

    ``namespace``: the operator's service requires one (runs are Routines there, under Kubernetes RBAC).
    """

    def __init__(self, location: targets.Location, *, namespace: str | None = None, batch: int = BATCH) -> None:
        self._location = location
        self._namespace = namespace
        self._batch = batch
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: Socket | None = None
        self._outbox: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self._batches: dict[int, asyncio.Future[list[frames.Admission]]] = {}
        self._outcomes: dict[int, asyncio.Future[frames.Outcome]] = {}
        self._run_ids: dict[int, directives.RunID] = {}
        self._answers: dict[int, asyncio.Future[frames.Status]] = {}
        self._serving: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        headers = {"Authorization": f"Bearer {self._location.token}"}
        self._http = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None))
        try:
            ws = await self._connect()
        except BaseException:
            await self._http.close()
            raise
        self._serving = asyncio.create_task(self._serve_forever(ws), name="workpath-client-connection")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._ws is not None:
            await self._ws.close()
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
            self._serving = None
        if self._http is not None:
            await self._http.close()
        self._fail_all(errors.ClientError("the client was closed"))

    async def _connect(self) -> Socket:
        assert self._http is not None, "open() the target first"
        location = self._location
        url = location.url.replace("http", "ws", 1) + "/v1/clients"
        try:
            return await self._http.ws_connect(
                url,
                params={"namespace": self._namespace} if self._namespace else None,
                compress=0,
                max_msg_size=0,
                autoping=True,
                decode_text=False,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise _refusal(exc, location, namespace=self._namespace) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise errors.ClientError(
                f"cannot reach the workpath service at {location.url} ({exc}); check the URL (from "
                f"{location.url_from}) and that the service runs ('workpath dev MODULE' in local mode)"
            ) from None

    async def _serve_forever(self, ws: Socket) -> None:
        """Serve a connection; when it is lost, reconnect and await again what was awaited."""
        failures = 0
        while True:
            self._ws = ws
            reason = await self._serve(ws)
            self._ws = None
            if self._closing:
                return
            logger.warning("lost the connection to %s (%s); reconnecting", self._location.url, reason)
            self._lost(errors.ClientError(f"the connection to {self._location.url} was lost ({reason})"))
            while True:
                failures += 1
                await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, 0.05 * 2.0 ** min(failures, 16))))
                try:
                    ws = await self._connect()
                except errors.ClientAuthenticationError as exc:
                    self._fail_all(exc)
                    return
                except errors.ClientError as exc:
                    logger.warning("%s", exc)
                    continue
                failures = 0
                self._await_again()
                break

    async def _serve(self, ws: Socket) -> str:
        writer = asyncio.create_task(self._write(ws), name="workpath-client-writer")
        try:
            return await self._read(ws)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await writer

    async def _write(self, ws: Socket) -> None:
        outbox = self._outbox
        wake = self._wake
        while True:
            while outbox:
                frame = outbox[0]
                await ws.send_str(frame)
                outbox.popleft()  # popped once sent: a frame not sent when the connection drops is still here
            wake.clear()
            await wake.wait()

    async def _read(self, ws: Socket) -> str:
        decode = frames.decode_from_service
        handlers = {
            frames.Finished: self._finished,
            frames.Accepted: self._accepted,
            frames.Status: self._status,
            frames.Error: self._error,
        }
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            try:
                frame = decode(message.data)
            except errors.DirectiveError as exc:
                logger.warning("ignoring a bad frame from the service: %s", exc)
                continue
            handlers[type(frame)](frame)  # type: ignore[operator]
        failure = ws.exception()
        return str(failure) if failure is not None else f"closed by the service (code {ws.close_code})"

    def _send(self, frame: str) -> None:
        self._outbox.append(frame)
        self._wake.set()

    # ------------------------------------------------------------------ requests

    async def submit(self, specs: Sequence[frames.RunSpec]) -> list[targets.Ticket]:
        self._check_open()
        loop = asyncio.get_running_loop()
        ids = self._ids
        outcomes = self._outcomes
        mine: dict[int, asyncio.Future[frames.Outcome]] = {}
        batches: list[asyncio.Future[list[frames.Admission]]] = []
        encoded: dict[int, str] = {}  # by id(spec): a spec submitted many times is encoded once
        for start in range(0, len(specs), self._batch):
            submissions: list[tuple[int, str]] = []
            for spec in specs[start : start + self._batch]:
                request_id = next(ids)
                outcomes[request_id] = mine[request_id] = loop.create_future()
                text = encoded.get(id(spec))
                if text is None:
                    text = encoded[id(spec)] = frames.encode_spec(spec)
                submissions.append((request_id, text))
            batch = self._batches[submissions[0][0]] = loop.create_future()
            batches.append(batch)
            self._send(frames.encode_submit(submissions))
        tickets: list[targets.Ticket] = []
        for batch in batches:
            for admission in await batch:
                tickets.append(self._ticket(admission, mine[admission.request_id]))
        return tickets

    def _ticket(self, admission: frames.Admission, outcome: asyncio.Future[frames.Outcome]) -> targets.Ticket:
        """The ticket of an answered submission; its outcome may have come first (a run that ended at once)."""
        request_id = admission.request_id
        if admission.run_id is None:
            self._outcomes.pop(request_id, None)
            outcome.cancel()
            return targets.Ticket(run_id=None, outcome=None, refusal=admission.error)
        if not outcome.done():
            self._run_ids[request_id] = admission.run_id
        return targets.Ticket(run_id=admission.run_id, outcome=outcome, routine=admission.routine)

    def follow(self, run_id: directives.RunID) -> asyncio.Future[frames.Outcome]:
        self._check_open()
        request_id = next(self._ids)
        future = self._outcomes[request_id] = asyncio.get_running_loop().create_future()
        self._run_ids[request_id] = run_id
        self._send(directives.encode(frames.Await(runs=[frames.AwaitedRun(request_id=request_id, run_id=run_id)])))
        return future

    async def read(self, run_id: directives.RunID) -> frames.Status:
        return await self._ask(lambda request_id: frames.Read(request_id=request_id, run_id=run_id))

    def cancel(self, run_id: directives.RunID, *, reason: str) -> asyncio.Future[frames.Status]:
        self._check_open()
        request_id = next(self._ids)
        future = self._answers[request_id] = asyncio.get_running_loop().create_future()
        self._send(directives.encode(frames.Cancel(request_id=request_id, run_id=run_id, reason=reason)))
        return future

    async def _ask(self, build: Callable[[int], directives.Payload]) -> frames.Status:
        self._check_open()
        request_id = next(self._ids)
        future: asyncio.Future[frames.Status] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = future
        self._send(directives.encode(build(request_id)))
        return await future

    def logs(self, run_id: directives.RunID, *, follow: bool) -> AsyncIterator[directives.Log]:
        assert self._http is not None, "open() the target first"
        return read_logs(self._http, self._location.url, run_id, namespace=self._namespace, follow=follow)

    def _check_open(self) -> None:
        if self._serving is None or self._closing:
            raise errors.ClientError("the client is not open: use 'async with client:' or 'await client.open()'")

    # ------------------------------------------------------------------ answers

    def _finished(self, frame: frames.Finished) -> None:
        outcomes = self._outcomes
        run_ids = self._run_ids
        for outcome in frame.runs:
            request_id = outcome.request_id
            future = outcomes.pop(request_id, None)
            run_ids.pop(request_id, None)
            if future is not None and not future.done():
                future.set_result(outcome)

    def _accepted(self, frame: frames.Accepted) -> None:
        if frame.runs:
            future = self._batches.pop(frame.runs[0].request_id, None)
            if future is not None and not future.done():
                future.set_result(frame.runs)

    def _status(self, frame: frames.Status) -> None:
        future = self._answers.pop(frame.request_id, None)
        if future is not None and not future.done():
            future.set_result(frame)

    def _error(self, frame: frames.Error) -> None:
        failure = _error_of(frame)
        logger.debug("the service refused a frame: %s", failure)
        for request_id in frame.request_ids:
            for pending in (self._batches, self._answers, self._outcomes):
                _fail(pending.pop(request_id, None), failure)
            self._run_ids.pop(request_id, None)

    # ------------------------------------------------------------------ losses

    def _lost(self, failure: errors.ClientError) -> None:
        """The connection is gone: unanswered submissions and questions fail; awaited runs are awaited again."""
        self._outbox.clear()
        for pending in (self._batches, self._answers):
            for future in pending.values():
                _fail(future, failure)
            pending.clear()
        for request_id in [r for r in self._outcomes if r not in self._run_ids]:
            _fail(self._outcomes.pop(request_id), failure)

    def _await_again(self) -> None:
        awaited = [frames.AwaitedRun(request_id=r, run_id=run_id) for r, run_id in self._run_ids.items()]
        for start in range(0, len(awaited), self._batch):
            self._send(directives.encode(frames.Await(runs=awaited[start : start + self._batch])))

    def _fail_all(self, failure: errors.ClientError) -> None:
        for pending in (self._batches, self._answers, self._outcomes):
            for future in pending.values():
                _fail(future, failure)
            pending.clear()
        self._run_ids.clear()


async def read_logs(
    http: aiohttp.ClientSession, url: str, run_id: directives.RunID, *, namespace: str | None, follow: bool
) -> AsyncIterator[directives.Log]:
    """A run's log lines from the service at ``url`` (``GET /v1/runs/ID/logs``, NDJSON), with ``http``'s token."""
    params = {"follow": "1" if follow else "0"} | ({"namespace": namespace} if namespace else {})
    async with http.get(f"{url}/v1/runs/{run_id}/logs", params=params) as response:
        if response.status == 404:
            raise errors.RunNotFoundError(f"the service has no run {run_id} (any more)")
        if response.status != 200:
            raise errors.ClientError(
                f"the service refused to show the logs ({response.status}): {await response.text()}"
            )
        async for line in response.content:
            if line.strip():
                yield directives.Log.model_validate_json(line)


def _fail(future: asyncio.Future[Any] | None, failure: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(failure)
        _silence(future)


def _silence(future: asyncio.Future[Any] | None) -> None:
    """Mark a failed future's exception as seen: a run nobody awaits must not log 'never retrieved'."""
    if future is not None and future.done() and not future.cancelled():
        future.exception()


def _error_of(frame: frames.Error) -> errors.ClientError:
    if frame.code == frames.ErrorCode.FORBIDDEN:
        return errors.ClientAuthenticationError(frame.message)
    if frame.code == frames.ErrorCode.UNKNOWN_RUN:
        return errors.RunNotFoundError(frame.message)
    return errors.ClientError(f"the service refused a request ({frame.code}): {frame.message}")


def _refusal(
    exc: aiohttp.WSServerHandshakeError, location: targets.Location, *, namespace: str | None
) -> errors.ClientError:
    if exc.status in (401, 403):
        return errors.ClientAuthenticationError(
            f"the workpath service at {location.url} refused the token (HTTP {exc.status}); check the token (from "
            f"{location.token_from})"
        )
    if exc.status == 400 and namespace is None:
        return errors.ClientError(
            f"the service at {location.url} wants a namespace (HTTP 400): it is the operator's, where runs are "
            f"Routines; give namespace="
        )
    if exc.status == 404:
        return errors.ClientError(
            f"{location.url} has no workpath clients API (/v1/clients answered 404); check the URL (from "
            f"{location.url_from}): it is the directive service's, e.g. http://127.0.0.1:7740"
        )
    return errors.ClientError(f"the workpath service at {location.url} refused the connection: {exc}")
