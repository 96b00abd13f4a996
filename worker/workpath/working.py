"""The worker runtime: one connection to the directive service, and the jobs it runs.

:class:`Worker` connects (and reconnects, with backoff and full jitter), says
``v1.ready``, answers pulse checks, runs the routines it is asked to run as
:class:`~workpath.jobs.Job` objects, forwards sub-routine requests and their
answers, and drains on request (SIGTERM/SIGINT under :func:`run_worker`).

Frames out go through one outbox drained by one writer task, so nothing that
sends ever awaits. Every frame sent on a connection has an index (``v1.ready`` is
0); a pulse check says how many frames the service has read, which confirms the
reports (``starting`` and the finals: ``completed``, ``failed``, ``released``)
below that index. Unconfirmed reports stay in a :class:`ReplayBuffer` and are sent
again after a reconnect, as are unanswered sub-routine requests; the service
drops the duplicates.

Each job is one asyncio task, started eagerly: a routine that does not await
finishes inside the handler of its ``request_start`` without a trip through the
event loop. Plain ``def`` routines run in a thread pool as large as the slots.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import logging
import os
import random
import secrets
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

import aiohttp

from workpath import contexts, directives, errors, jobs, routines, settings

logger = logging.getLogger("workpath.worker")

"""The error type of a run stopped by a ``v1.routine.cancel``."""

DRAINING: Final = "worker draining"
"""Why a draining worker hands runs back (``v1.routine.released``)."""

SUPERSEDED: Final = "superseded by a newer attempt"

EXIT_OK: Final = 0
EXIT_TOKEN_REFUSED: Final = 3

UNSENT: Final = sys.maxsize
"""The index of a frame queued while disconnected: never confirmed before it is sent."""

MAX_ERROR_MESSAGE: Final = 8192

_SHUTDOWN_GRACE: Final = 2.0
"""Seconds to wait for cancelled jobs to finish their bookkeeping at shutdown."""

Socket = aiohttp.ClientWebSocketResponse[Literal[False]]


class ReplayBuffer:
    """Reports sent (or to send) that the service has not yet confirmed.

    Entries are ``(index, run_id, attempt, frame, final)`` in the order sent, so that
    confirming ``received`` frames pops from the left: O(confirmed), no scan. A
    final (completed/failed/released) keeps its run "held" (listed in ``v1.ready``)
    until it is confirmed; a ``starting`` report is only replayed.
    """

    __slots__ = ("_entries", "_held")

    def __init__(self) -> None:
        self._entries: collections.deque[tuple[int, directives.RunID, int, str, bool]] = collections.deque()
        self._held: dict[directives.RunID, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held(self) -> Mapping[directives.RunID, int]:
        """The runs whose final report is not confirmed yet, with its attempt."""
        return self._held

    def add(self, index: int, run_id: directives.RunID, attempt: int, frame: str, *, final: bool) -> None:
        """Remember a report sent as frame ``index`` (:data:`UNSENT` if not sent yet)."""
        self._entries.append((index, run_id, attempt, frame, final))
        if final:
            self._held[run_id] = attempt

    def confirm(self, received: int) -> int:
        """Forget the reports among the first ``received`` frames; return how many."""
        entries = self._entries
        held = self._held
        count = 0
        while entries and entries[0][0] < received:
            _, run_id, attempt, _, final = entries.popleft()
            if final and held.get(run_id) == attempt:
                del held[run_id]
            count += 1
        return count

    def replay(self, send: Callable[[str], int]) -> int:
        """Send every report again, in order, through ``send`` (which returns the new index)."""
        entries = self._entries
        self._entries = collections.deque(
            (send(frame), run_id, attempt, frame, final) for _, run_id, attempt, frame, final in entries
        )
        return len(self._entries)


class Worker:
    """A worker: runs the routines it is given for the directive service at ``settings.url``.

    ``await worker.run()`` returns the exit code: 0 after a drain (:meth:`drain`),
    3 if the service refused the token.
    """

    def __init__(
        self,
        config: settings.WorkerSettings,
        definitions: Iterable[routines.RoutineDefinition[..., Any]],
    ) -> None:
        self.settings = config
        self.definitions: Mapping[directives.RoutineID, routines.RoutineDefinition[..., Any]] = routines.index(
            definitions
        )
        if not self.definitions:
            raise errors.RoutineDefinitionError("a worker needs at least one routine")
        self.worker_id = directives.WorkerID(config.worker_id)
        # runs
        self._jobs: dict[directives.RunID, jobs.Job] = {}
        self._replay = ReplayBuffer()
        self._calls: dict[directives.RequestID, contexts.SubroutineCall] = {}
        self._request_prefix = f"{secrets.token_hex(4)}-"
        self._request_numbers = itertools.count(1)
        self._abandoned: set[concurrent.futures.Future[Any]] = set()
        # connection
        self._ws: Socket | None = None
        self._sent = 0
        self._received = 0
        self._outbox: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        # lifecycle
        self._draining = False
        self._stopping = False
        self._stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._settled = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._drain_requested = False
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._handlers: dict[type[directives.Payload], Callable[[Any], None]] = {
            directives.CheckPulse: self._on_check_pulse,
            directives.StartRoutine: self._on_start_routine,
            directives.CancelRoutine: self._on_cancel_routine,
            directives.RoutineStarting: self._on_child_starting,
            directives.RoutineCompleted: self._on_child_completed,
            directives.RoutineFailed: self._on_child_failed,
            directives.Error: self._on_error,
        }

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} jobs={len(self._jobs)} connected={self._ws is not None}>"

    # ------------------------------------------------------------------ public

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def running(self) -> Mapping[directives.RunID, jobs.Job]:
        """The jobs running now, by run ID."""
        return self._jobs

    @property
    def replay_buffer(self) -> ReplayBuffer:
        return self._replay

    @property
    def abandoned_threads(self) -> int:
        """Plain ``def`` routines still running in threads after their job was cancelled or timed out."""
        return sum(1 for future in tuple(self._abandoned) if not future.done())

    def drain(self) -> None:
        """Stop taking runs, finish (or after ``drain_timeout`` hand back) the running ones, then stop.

        Called before :meth:`run`, the worker drains as soon as it runs.
        """
        self._drain_requested = True
        if self._drainer is None and self._loop is not None:
            self._drainer = self._loop.create_task(self._drain(), name="workpath-drain")

    async def run(self, *, handle_signals: bool = False) -> int:
        """Connect and work until drained; return the exit code.

        With ``handle_signals``, SIGTERM and SIGINT start a drain, and a second one
        exits the process at once (for the CLI: it ends the process).
        """
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.slots, thread_name_prefix="workpath-routine"
        )
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
        if self._drain_requested:
            self.drain()
        try:
            async with aiohttp.ClientSession() as session:
                return await self._connect_and_serve(session)
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            await self._shutdown()

    # ------------------------------------------------------------ connection

    async def _connect_and_serve(self, session: aiohttp.ClientSession) -> int:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping:
            try:
                ws = await self._connect(session)
            except errors.AuthenticationError as exc:
                logger.error("%s", exc)
                return EXIT_TOKEN_REFUSED
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failures += 1
                delay = self._backoff(failures)
                logger.warning(
                    "cannot connect to %s (attempt %d): %s; retrying in %.2fs",
                    self.settings.url,
                    failures,
                    _describe(exc),
                    delay,
                )
                await self._pause(delay)
                continue
            if self._stopping:
                await ws.close()
                break
            began = loop.time()
            await self._serve(ws)
            if loop.time() - began >= self.settings.backoff_cap:
                failures = 0  # it worked for a while: reconnect at once
            else:
                failures += 1  # closed soon after it opened: do not hammer the service
                await self._pause(self._backoff(failures))
        return EXIT_OK

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(failures - 1)))."""
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** min(failures - 1, 32))
        return random.uniform(0, ceiling)

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the worker stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopped.wait()

    async def _connect(self, session: aiohttp.ClientSession) -> Socket:
        token = self.settings.read_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                return await session.ws_connect(
                    self.settings.url,
                    headers=headers,
                    heartbeat=None,
                    autoping=True,
                    compress=0,
                    max_msg_size=self.settings.max_message_size,
                    timeout=aiohttp.ClientWSTimeout(ws_close=_SHUTDOWN_GRACE),
                    decode_text=False,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                how = "WORKPATH_TOKEN_FILE/--token-file" if self.settings.token_file else "WORKPATH_TOKEN/--token"
                raise errors.AuthenticationError(
                    f"the service at {self.settings.url} refused the token (HTTP {exc.status}); check {how}"
                ) from exc
            raise

    async def _serve(self, ws: Socket) -> None:
        """Work on one connection until it closes (or the worker stops)."""
        self._ws = ws
        self._sent = 0
        self._outbox.clear()
        ready = self._ready()
        self._send(directives.encode(ready))
        replayed = self._replay.replay(self._send)
        requests = 0
        for call in self._calls.values():
            if not call.future.done():
                self._send(call.frame)
                requests += 1
        if self._draining:
            self._send(self._pulse(None))
        logger.info(
            "connected to %s as %s (pool %s, %d slots, %d routine(s)); holding %d run(s), "
            "replayed %d report(s) and %d sub-routine request(s)",
            self.settings.url,
            self.worker_id,
            self.settings.pool,
            self.settings.slots,
            len(self.definitions),
            len(ready.running),
            replayed,
            requests,
        )
        reader = asyncio.create_task(self._read(ws), name="workpath-reader")
        writer = asyncio.create_task(self._write(ws), name="workpath-writer")
        watchdog = asyncio.create_task(self._watch(), name="workpath-watchdog")
        tasks = (reader, writer, watchdog)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._ws = None
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            self._outbox.clear()
            with contextlib.suppress(Exception):
                await ws.close()
            self._settled.set()  # a draining worker stops waiting for confirmations
        if not self._stopping:
            # The reader knows best why a connection ended; a failed write only says it is closing.
            reason = next(filter(None, (_ended(task) for task in tasks if task in done)), None)
            logger.warning("lost the connection to %s: %s; reconnecting", self.settings.url, reason or "closed")

    async def _read(self, ws: Socket) -> str | None:
        """Handle frames until the connection closes; return why it closed."""
        decode = directives.decode_from_service
        handlers = self._handlers
        text = aiohttp.WSMsgType.TEXT
        while True:
            message = await ws.receive()
            if message.type == text:
                self._received += 1
                try:
                    payload = decode(message.data)
                except errors.DirectiveError as exc:
                    logger.warning("ignoring a bad directive from the service: %s (%s)", exc, exc.code)
                    continue
                try:
                    handlers[type(payload)](payload)
                except Exception:
                    logger.exception("failed to handle %s from the service", payload.KEY)
            elif message.type in _CLOSED:
                code = ws.close_code
                failure = ws.exception()
                if failure is not None:
                    return _describe(failure)
                return f"closed by the service (code {code})" if code is not None else "closed"
            else:
                logger.warning("ignoring a %s frame from the service: directives are text", message.type.name)

    async def _write(self, ws: Socket) -> None:
        """The single writer: send queued frames in order; end once stopping and flushed."""
        outbox = self._outbox
        wake = self._wake
        while True:
            while outbox:
                await ws.send_str(outbox.popleft())
            if self._stopping:
                return
            wake.clear()
            await wake.wait()

    async def _watch(self) -> str:
        """End when the service has sent nothing for ``silence_timeout`` (it pulses regularly)."""
        timeout = self.settings.silence_timeout
        seen = self._received
        while True:
            await asyncio.sleep(timeout)
            if self._received == seen:
                return f"no directive from the service for {timeout:.0f}s"
            seen = self._received

    def _send(self, frame: str) -> int:
        """Queue a frame for the current connection; return its index (:data:`UNSENT` if none)."""
        if self._ws is None:
            return UNSENT
        index = self._sent
        self._sent = index + 1
        self._outbox.append(frame)
        self._wake.set()
        return index

    def _ready(self) -> directives.Ready:
        held = dict(self._replay.held)
        held.update((run_id, job.attempt) for run_id, job in self._jobs.items())
        return directives.Ready(
            worker_id=self.worker_id,
            pool=self.settings.pool,
            routines=list(self.definitions),
            slots=self.settings.slots,
            running=[directives.HeldRun(run_id=run_id, attempt=attempt) for run_id, attempt in held.items()],
        )

    def _pulse(self, pulse_id: int | None) -> str:
        status: directives.WorkerStatus = "draining" if self._draining else "busy" if self._jobs else "idle"
        return directives.encode(directives.GivePulse(id=pulse_id, status=status, running=list(self._jobs)))

    # ------------------------------------------------------------ directives in

    def _on_check_pulse(self, check: directives.CheckPulse) -> None:
        self._send(self._pulse(check.id))
        if self._replay.confirm(check.received) and self._draining and not self._replay.held:
            self._settled.set()

    def _on_start_routine(self, start: directives.StartRoutine) -> None:
        run_id = start.run_id
        attempt = start.attempt
        job = self._jobs.get(run_id)
        if job is not None:
            if job.attempt >= attempt:
                logger.debug("run %s attempt %d is already running here; ignoring a repeat", run_id, attempt)
                return
            logger.info("run %s: attempt %d replaces attempt %d here", run_id, attempt, job.attempt)
            job.cancel(SUPERSEDED)
            del self._jobs[run_id]
        finished = self._replay.held.get(run_id)
        if finished is not None and finished >= attempt:
            logger.debug("run %s attempt %d already finished here; ignoring a repeat", run_id, attempt)
            return
        if self._draining:
            self._final(run_id, attempt, directives.Released(run_id=run_id, attempt=attempt, reason=DRAINING))
            return
        definition = self.definitions.get(start.routine_id)
        if definition is None:
            self._reject(start, directives.ErrorType.ROUTINE_NOT_FOUND, self._not_found(start.routine_id))
            return
        try:
            definition.check_params(start.params)
        except errors.InvalidParamsError as exc:
            self._reject(start, directives.ErrorType.INVALID_PARAMS, str(exc))
            return
        context = contexts.Context(
            channel=self,
            run_id=run_id,
            routine_id=definition.id,
            attempt=attempt,
            params=start.params,
            worker_id=self.worker_id,
            deadline=start.deadline,
            parent_run_id=start.parent_run_id,
        )
        job = self._jobs[run_id] = jobs.Job(run_id=run_id, attempt=attempt, task=jobs.Task(definition, context))
        job.runner = asyncio.Task(self._run(job), loop=self._loop, name=run_id, eager_start=True)

    def _on_cancel_routine(self, cancel: directives.CancelRoutine) -> None:
        job = self._jobs.get(cancel.run_id)
        if job is None:
            logger.debug("asked to cancel run %s, which is not running here; ignoring", cancel.run_id)
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("cancelling run %s: %s", cancel.run_id, cancel.reason)
        job.cancel(cancel.reason)

    def _on_child_starting(self, report: directives.RoutineStarting) -> None:
        call = self._calls.get(report.request_id) if report.request_id is not None else None
        if call is None:
            logger.debug("ignoring %s for unknown request %s", report.KEY, report.request_id)
            return
        call.run_id = report.run_id
        call.worker_id = report.worker_id
        call.started_at = report.started_at
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "sub-routine %s (request %s) started as run %s on %s",
                call.routine_id,
                call.request_id,
                report.run_id,
                report.worker_id,
            )

    def _on_child_completed(self, report: directives.RoutineCompleted) -> None:
        call = self._calls.pop(report.request_id, None) if report.request_id is not None else None
        if call is None:
            logger.debug("ignoring %s for unknown request %s", report.KEY, report.request_id)
            return
        if not call.future.done():
            call.future.set_result(report.result)

    def _on_child_failed(self, report: directives.RoutineFailed) -> None:
        call = self._calls.pop(report.request_id, None) if report.request_id is not None else None
        if call is None:
            logger.debug("ignoring %s for unknown request %s", report.KEY, report.request_id)
            return
        if not call.future.done():
            error = report.error
            call.future.set_exception(
                errors.RoutineFailedError(
                    call.routine_id, type=error.type, message=error.message, retryable=error.retryable
                )
            )

    def _on_error(self, error: directives.Error) -> None:
        # Reports refused as stale or unknown were read all the same: the next pulse
        # check confirms (and forgets) them.
        logger.warning(
            "the service refused a directive: %s: %s (in reply to %s)",
            error.code,
            error.message,
            error.in_reply_to,
        )

    # ------------------------------------------------------------------ jobs

    async def _run(self, job: jobs.Job) -> None:
        """The one task of a job: report it starting, run it, report how it ended."""
        started = job.start()
        frame = directives.encode(
            directives.RoutineStarting(run_id=job.id, attempt=job.attempt, worker_id=self.worker_id, started_at=started)
        )
        self._replay.add(self._send(frame), job.id, job.attempt, frame, final=False)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s attempt %d of %s started", job.id, job.attempt, job.task.routine.id)
        assert self._executor is not None
        try:
            await job.run(self._executor)
        finally:
            self._finish(job)

    def _finish(self, job: jobs.Job) -> None:
        if job.thread is not None and not job.thread.done():
            self._abandoned.add(job.thread)
            job.thread.add_done_callback(self._abandoned.discard)
        reason = job.cancel_reason
        payload: directives.Payload | None = None
        if reason != SUPERSEDED and reason != jobs.SHUTDOWN:
            payload = self._outcome(job)  # before the job is gone: it may log for the run
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]
            if self._draining and not self._jobs:
                self._idle.set()
        if payload is not None:
            self._final(job.id, job.attempt, payload, job=job)

    def _outcome(self, job: jobs.Job) -> directives.Payload:
        """The final report of a finished job."""
        task = job.task
        reason = job.cancel_reason
        payload: directives.Payload
        if reason == DRAINING:
            payload = directives.Released(run_id=job.id, attempt=job.attempt, reason=DRAINING)
        elif reason is not None:
            payload = self._failure(job, directives.ErrorInfo(type=directives.ErrorType.CANCELLED, message=reason))
        elif task.error is not None:
            payload = self._failure(job, self._error_info(job, task.error))
        else:
            payload = directives.RoutineCompleted(
                run_id=job.id, attempt=job.attempt, result=task.result, completed_at=job.completed or directives.now()
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "run %s attempt %d of %s: %s after %s",
                job.id,
                job.attempt,
                task.routine.id,
                payload.KEY,
                job.run_time,
            )
        return payload

    def _final(
        self,
        run_id: directives.RunID,
        attempt: int,
        payload: directives.Payload,
        *,
        job: jobs.Job | None = None,
    ) -> None:
        """Send a final report and keep it until confirmed."""
        try:
            frame = directives.encode(payload)
        except ValueError as exc:  # pydantic's serialisation error: the result is not JSON
            assert job is not None
            frame = directives.encode(self._failure(job, self._bad_result(job, f"is not JSON-serialisable: {exc}")))
        if job is not None and self._too_large(frame):
            size = len(frame.encode())
            frame = directives.encode(
                self._failure(
                    job,
                    self._bad_result(
                        job,
                        f"is too large: {size} bytes encoded, over {self.settings.max_message_size} "
                        f"(WORKPATH_MAX_MESSAGE_SIZE); store large data elsewhere and return a reference",
                    ),
                )
            )
        self._replay.add(self._send(frame), run_id, attempt, frame, final=True)

    def _failure(self, job: jobs.Job, error: directives.ErrorInfo) -> directives.RoutineFailed:
        return directives.RoutineFailed(
            run_id=job.id, attempt=job.attempt, error=error, completed_at=job.completed or directives.now()
        )

    def _reject(self, start: directives.StartRoutine, kind: str, message: str) -> None:
        """Fail a run that cannot even start."""
        logger.warning("run %s of %s fails at once: %s", start.run_id, start.routine_id, message)
        self._final(
            start.run_id,
            start.attempt,
            directives.RoutineFailed(
                run_id=start.run_id,
                attempt=start.attempt,
                error=directives.ErrorInfo(type=kind, message=message, retryable=False),
                completed_at=directives.now(),
            ),
        )

    def _not_found(self, routine_id: str) -> str:
        known = sorted(self.definitions)
        shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        return f"routine {routine_id!r} is not loaded on worker {self.worker_id} (it has: {shown})"

    def _bad_result(self, job: jobs.Job, problem: str) -> directives.ErrorInfo:
        result = job.task.result
        message = (
            f"routine {job.task.routine.id!r} returned a {type(result).__module__}.{type(result).__qualname__} "
            f"that {problem}; return JSON data (dict, list, str, int, float, bool, None), a dataclass or a "
            f"pydantic model"
        )
        logger.warning("run %s: %s", job.id, message)
        return directives.ErrorInfo(type=directives.ErrorType.INVALID_RESULT, message=message, retryable=False)

    def _error_info(self, job: jobs.Job, error: BaseException) -> directives.ErrorInfo:
        message = str(error) or repr(error)
        if len(message) > MAX_ERROR_MESSAGE:
            message = message[:MAX_ERROR_MESSAGE] + "... (truncated)"
        retryable = errors.is_retryable(error)
        delay = error.delay if isinstance(error, errors.TemporaryError) else None
        if not isinstance(error, errors.WorkpathError | TimeoutError):
            # Not raised on purpose: show where, here and in the run's log.
            logger.error("run %s attempt %d of %s failed", job.id, job.attempt, job.task.routine.id, exc_info=error)
            self._send_log(job.id, self._traceback_log(job, error, message))
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s attempt %d failed: %r", job.id, job.attempt, error)
        return directives.ErrorInfo(type=type(error).__name__, message=message, retryable=retryable, delay=delay)

    def _traceback_log(self, job: jobs.Job, error: BaseException, message: str) -> str:
        entry = directives.Log(
            run_id=job.id,
            level="error",
            message=f"{type(error).__name__}: {message}",
            time=directives.now(),
            fields={"traceback": "".join(traceback.format_exception(error))},
        )
        return directives.encode(entry)

    def _too_large(self, frame: str) -> bool:
        limit = self.settings.max_message_size
        return len(frame) * 4 > limit and len(frame.encode()) > limit

    # ------------------------------------------------- the channel of contexts

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the worker is not running"
        return self._loop

    def request_subroutine(
        self,
        parent: contexts.Context,
        routine_id: directives.RoutineID,
        params: dict[str, Any],
        *,
        timeout_seconds: float | None,
        pool: str | None,
    ) -> contexts.SubroutineCall:
        job = self._jobs.get(parent.run_id)
        if job is None or job.task.context is not parent or parent.cancelled:
            raise errors.ContextError(
                f"run {parent.run_id} is no longer running here; it cannot start sub-routine {routine_id!r}"
            )
        request_id = directives.RequestID(f"{self._request_prefix}{next(self._request_numbers)}")
        request = directives.RequestSubroutine(
            request_id=request_id,
            routine_id=routine_id,
            params=params,
            parent_run_id=parent.run_id,
            timeout_seconds=timeout_seconds,
            pool=pool,
        )
        try:
            frame = directives.encode(request)
        except ValueError as exc:
            raise errors.InvalidParamsError(
                f"the params for sub-routine {routine_id!r} are not JSON-serialisable: {exc}"
            ) from None
        if self._too_large(frame):
            raise errors.InvalidParamsError(
                f"the params for sub-routine {routine_id!r} are too large: {len(frame.encode())} bytes "
                f"encoded, over {self.settings.max_message_size} (WORKPATH_MAX_MESSAGE_SIZE)"
            )
        call = contexts.SubroutineCall(
            request_id=request_id,
            routine_id=routine_id,
            frame=frame,
            parent_run_id=parent.run_id,
            future=self.loop.create_future(),
        )
        self._calls[request_id] = call
        self._send(frame)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s requested sub-routine %s (request %s)", parent.run_id, routine_id, request_id)
        return call

    def forget_subroutine(self, call: contexts.SubroutineCall) -> None:
        if self._calls.pop(call.request_id, None) is not None:
            # No answer came: the caller was cancelled (ctx.gather after a sibling failed, or its own run),
            # so the child would run for nobody.
            self._send(
                directives.encode(
                    directives.CancelSubroutine(request_id=call.request_id, parent_run_id=call.parent_run_id)
                )
            )

    def send_log(self, run_id: directives.RunID, frame: str) -> None:
        if threading.get_ident() == self._loop_thread:
            self._send_log(run_id, frame)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone
                self.loop.call_soon_threadsafe(self._send_log, run_id, frame)

    def _send_log(self, run_id: directives.RunID, frame: str) -> None:
        if run_id not in self._jobs:
            logger.debug("dropping a log line of run %s, which is no longer running here", run_id)
        elif self._too_large(frame):
            logger.warning("dropping a log line of run %s: over WORKPATH_MAX_MESSAGE_SIZE", run_id)
        else:
            self._send(frame)

    # ------------------------------------------------------------- lifecycle

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.info("%s received: draining (send it again to exit at once)", name)
            self.drain()
            return
        logger.error("%s received again: exiting at once, abandoning %d run(s)", name, len(self._jobs))
        logging.shutdown()
        os._exit(128 + signum)

    async def _drain(self) -> None:
        self._draining = True
        self._send(self._pulse(None))
        if self._jobs:
            logger.info(
                "draining: waiting up to %.1fs for %d running job(s)", self.settings.drain_timeout, len(self._jobs)
            )
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.drain_timeout):
                    await self._idle.wait()
        if self._jobs:
            logger.warning("drain timeout: handing %d run(s) back to the service", len(self._jobs))
            await self._cancel_jobs(DRAINING)
        self._settled.clear()
        if self._ws is not None and self._replay.held:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.confirm_timeout):
                    await self._settled.wait()
            if self._replay.held:
                logger.warning(
                    "%d final report(s) not confirmed by the service; exiting anyway", len(self._replay.held)
                )
        logger.info("drained; stopping")
        self._stop()

    async def _cancel_jobs(self, reason: str) -> None:
        running = list(self._jobs.values())
        for job in running:
            job.cancel(reason)
        runners = [job.runner for job in running if job.runner is not None and not job.runner.done()]
        if runners:
            _, late = await asyncio.wait(runners, timeout=_SHUTDOWN_GRACE)
            if late:
                logger.warning("%d job(s) did not stop when cancelled", len(late))

    def _stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()  # the writer flushes and ends, which ends the connection

    async def _shutdown(self) -> None:
        self._stop()
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        if self._jobs:
            await self._cancel_jobs(jobs.SHUTDOWN)
        for call in self._calls.values():
            call.future.cancel()
        self._calls.clear()
        abandoned = self.abandoned_threads
        if self._executor is not None:
            # Idle threads end at once; a thread still running a routine cannot be stopped.
            self._executor.shutdown(wait=not abandoned, cancel_futures=True)
        if abandoned:
            logger.warning(
                "%d plain 'def' routine(s) still run in threads after being cancelled or timing out", abandoned
            )


_CLOSED: Final = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}
)


def _ended(task: asyncio.Task[Any]) -> str | None:
    """Why a connection task ended: its result, or its exception."""
    if task.cancelled():
        return None
    failure = task.exception()
    if failure is not None:
        return _describe(failure)
    result = task.result()
    return result if isinstance(result, str) else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def new_event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed (``workpath[speed]``), else None (asyncio's)."""
    try:
        import uvloop  # optional: workpath[speed]
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_worker(config: settings.WorkerSettings, definitions: Iterable[routines.RoutineDefinition[..., Any]]) -> int:
    """Run a worker in this process until it is drained (SIGTERM/SIGINT); return the exit code."""
    worker = Worker(config, definitions)
    with asyncio.Runner(loop_factory=new_event_loop_factory()) as runner:
        code = runner.run(worker.run(handle_signals=True))
    if worker.abandoned_threads:
        # Threads cannot be killed, and the interpreter would wait for them at exit.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
