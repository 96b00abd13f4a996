"""The routine context: what a running routine knows and can do.

Every run gets a :class:`Context` as its first argument. The same object is
reachable from anywhere inside the run with :func:`context` (a contextvar, set for
``async def`` routines on the event loop and for plain ``def`` routines in their
thread), as Temporal's ``activity.info()`` is.

The context talks to the worker runtime through a :class:`Channel`, so that it can
be used (and tested) without a connection.

A worker process also prints every ``ctx.log`` line to its stdout (:func:`print_run_lines`),
one JSON object a line with the run ID and routine ID, so that a cluster's log collection
keeps them after the service's in-memory window has forgotten them. JSON rather than
logfmt: fields are any JSON value (nested ones too) and messages may hold quotes and
newlines, which JSON escapes one standard way, and log collectors parse JSON lines
without configuration.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import json
import logging
import traceback
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, Protocol, TextIO, TypeVar

from workpath import directives, errors, routines

T = TypeVar("T")

logger = logging.getLogger("workpath.routine")
#: The runs' ``ctx.log`` lines as JSON, once :func:`print_run_lines` gave it a stream.
run_lines = logging.getLogger("workpath.runs")

_current: contextvars.ContextVar[Context] = contextvars.ContextVar("workpath.context")


def context() -> Context:
    """The context of the routine running here (in its task, or in its thread).

    Raises :class:`~workpath.errors.ContextError` outside a routine.
    """
    try:
        return _current.get()
    except LookupError:
        raise errors.ContextError(
            "workpath.context() was called outside a routine: it only works while a routine runs "
            "(in its code or in code it calls); pass the ctx argument along otherwise"
        ) from None


@dataclasses.dataclass(eq=False, slots=True)
class SubroutineCall:
    """One sub-routine requested by a run (``ctx.call``), and what is known of it so far."""

    request_id: directives.RequestID
    """Worker-local ID of the request; the service tags the child's directives with it."""

    routine_id: directives.RoutineID
    frame: str
    """The encoded ``RequestSubroutine``, sent again after a reconnect until answered."""

    parent_run_id: directives.RunID
    """The run that asked for it."""

    future: asyncio.Future[Any]
    """Resolves with the child's result, or fails with :class:`~workpath.errors.RoutineFailedError`."""

    run_id: directives.RunID | None = None
    """The child's run ID, once the service reported it starting."""

    worker_id: directives.WorkerID | None = None
    """The worker running the child, once it started."""

    started_at: datetime.datetime | None = None


class Channel(Protocol):
    """What a context needs from the worker runtime."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the runtime runs on."""

    def request_subroutine(
        self,
        parent: Context,
        routine_id: directives.RoutineID,
        params: dict[str, Any],
        *,
        timeout_seconds: float | None,
        pool: str | None,
    ) -> SubroutineCall:
        """Send a sub-routine request (on the loop); raise at once if it cannot be sent."""

    def forget_subroutine(self, call: SubroutineCall) -> None:
        """The caller stopped waiting for ``call`` (answered, cancelled or failed)."""

    def send_log(self, run_id: directives.RunID, frame: str) -> None:
        """Send an encoded ``v1.log`` frame of run ``run_id``; callable from any thread."""


class Context:
    """What a running routine knows (its run, attempt, params, deadline) and can do.

    ``ctx.call(...)`` starts a sub-routine and waits for its result, ``ctx.gather(...)``
    waits for several, ``ctx.log`` writes to the run's log (locally and to the service).
    """

    __slots__ = (
        "_calls",
        "_cancelled",
        "_channel",
        "_log",
        "attempt",
        "deadline",
        "log_level",
        "params",
        "parent_run_id",
        "routine_id",
        "run_id",
        "worker_id",
    )

    run_id: directives.RunID
    """The run's ID; stable across attempts."""

    routine_id: directives.RoutineID
    attempt: int
    """1 for the first attempt, 2 for the first retry, ..."""

    params: Mapping[str, Any]
    """The params of the run, as received (they are also the routine's keyword arguments)."""

    worker_id: directives.WorkerID
    deadline: datetime.datetime | None
    """When this attempt times out (UTC), if it has a deadline."""

    parent_run_id: directives.RunID | None
    """The run that requested this one as a sub-routine, if any."""

    log_level: int | None
    """The lowest level of the ``ctx.log`` lines sent to the channel; if None, those the
    ``workpath.routine`` logger is enabled for (a worker's ``--log-level``)."""

    def __init__(
        self,
        *,
        channel: Channel,
        run_id: directives.RunID,
        routine_id: directives.RoutineID,
        attempt: int,
        params: Mapping[str, Any],
        worker_id: directives.WorkerID,
        deadline: datetime.datetime | None = None,
        parent_run_id: directives.RunID | None = None,
        log_level: int | None = None,
    ) -> None:
        self._channel = channel
        self.run_id = run_id
        self.routine_id = routine_id
        self.attempt = attempt
        self.params = params
        self.worker_id = worker_id
        self.deadline = deadline
        self.parent_run_id = parent_run_id
        self.log_level = log_level
        self._log: RoutineLogger | None = None
        self._calls: list[SubroutineCall] | None = None
        self._cancelled = False

    def __repr__(self) -> str:
        return f"<Context {self.routine_id} run={self.run_id} attempt={self.attempt}>"

    @property
    def log(self) -> RoutineLogger:
        """The run's logger: ``ctx.log.info("message", key=value, ...)``; usable from any thread."""
        if self._log is None:
            self._log = RoutineLogger(self)
        return self._log

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled or timed out.

        ``async def`` routines are interrupted with ``asyncio.CancelledError``; a thread
        cannot be interrupted, so a plain ``def`` routine that runs for long should check
        this now and then and return early: its result will be dropped anyway.
        """
        return self._cancelled

    @property
    def subroutines(self) -> tuple[SubroutineCall, ...]:
        """The sub-routines this run requested so far, oldest first."""
        return tuple(self._calls or ())

    # ----------------------------------------------------------------- sub-routines

    async def call(self, routine: str | routines.RoutineDefinition[..., Any], /, **params: Any) -> Any:
        """Run a sub-routine with ``params`` and return its result.

        ``routine`` is a routine ID or a routine definition. Raises
        :class:`~workpath.errors.RoutineFailedError` if the sub-routine fails (after its
        retries); see :meth:`call_with` for a timeout or another pool.
        """
        return await self.call_with(routine, params)

    async def call_with(
        self,
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout_seconds: float | None = None,
        pool: str | None = None,
    ) -> Any:
        """Like :meth:`call`, with options: a per-attempt ``timeout_seconds``, the ``pool`` to run in."""
        call = self._channel.request_subroutine(
            self,
            _routine_id(routine),
            dict(params) if params else {},
            timeout_seconds=timeout_seconds,
            pool=pool,
        )
        if self._calls is None:
            self._calls = []
        self._calls.append(call)
        try:
            return await call.future
        finally:
            self._channel.forget_subroutine(call)

    def call_sync(self, routine: str | routines.RoutineDefinition[..., Any], /, **params: Any) -> Any:
        """:meth:`call` for plain ``def`` routines: block this thread until the result is there."""
        return self.call_sync_with(routine, params)

    def call_sync_with(
        self,
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout_seconds: float | None = None,
        pool: str | None = None,
    ) -> Any:
        """:meth:`call_with` for plain ``def`` routines: block this thread until the result is there."""
        return self.wait_sync(self.call_with(routine, params, timeout_seconds=timeout_seconds, pool=pool))

    def wait_sync(self, awaitable: Awaitable[T], /) -> T:
        """Run ``awaitable`` on the worker's event loop and block this thread until it is done.

        For plain ``def`` routines (in the thread pool), e.g. ``ctx.wait_sync(ctx.gather(...))``.
        Raises :class:`~workpath.errors.ContextError` on the event loop, where it would block.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never awaited: do not warn about it
            raise errors.ContextError(
                "ctx.call_sync()/ctx.wait_sync() block the thread and cannot run on the event loop: "
                "in an 'async def' routine use 'await ctx.call(...)' instead"
            )
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self._channel.loop).result()

    async def gather(self, *awaitables: Awaitable[T]) -> list[T]:
        """Wait for all ``awaitables`` and return their results in order, like ``asyncio.gather``.

        On the first failure, the others are cancelled and that failure is raised; when
        several fail at once, the one passed first. The failures not raised are retrieved
        here, so asyncio does not log them as "never retrieved".
        """
        if not awaitables:
            return []
        futures = [asyncio.ensure_future(a) for a in awaitables]
        try:
            pending: set[asyncio.Future[T]] = set(futures)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                if (failure := _first_failure(future for future in futures if future in done)) is not None:
                    raise failure
            return [future.result() for future in futures]
        finally:
            unfinished = [future for future in futures if not future.done()]
            for future in unfinished:
                future.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
            _first_failure(futures)  # retrieves every failure, raised or not

    # ---------------------------------------------------------------- for the runtime

    def _cancel(self) -> None:
        """Mark the run cancelled and stop waiting for its sub-routines (on the loop)."""
        self._cancelled = True
        self._abandon()

    def _abandon(self) -> None:
        """Stop waiting for sub-routines nobody awaits any more (on the loop)."""
        for call in self._calls or ():
            if not call.future.done():
                call.future.cancel()


def _first_failure(futures: Iterable[asyncio.Future[Any]]) -> BaseException | None:
    """The exception of the first failed future among ``futures``; every one's is retrieved on the way."""
    failures = [future.exception() for future in futures if future.done() and not future.cancelled()]
    return next((failure for failure in failures if failure is not None), None)


async def _awaited[V](awaitable: Awaitable[V]) -> V:
    return await awaitable


def _routine_id(routine: object) -> directives.RoutineID:
    if isinstance(routine, routines.RoutineDefinition):
        return routine.id
    return routines.check_routine_id(routine)


_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def print_run_lines(stream: TextIO) -> None:
    """From now on, print the ``ctx.log`` lines of every run in this process to ``stream``, one JSON object a
    line (``time``, ``level``, ``runID``, ``routineID``, ``attempt``, ``workerID``, ``message``, ``fields``),
    instead of as text through the ``workpath.routine`` logger. The worker's ``--log-level`` still decides
    which lines are written (and sent)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    run_lines.addHandler(handler)
    run_lines.setLevel(logging.DEBUG)
    run_lines.propagate = False


class RoutineLogger:
    """A run's logger: lines go to the local ``workpath.routine`` logger and to the service.

    A line is sent to the service when that local logger is enabled for its level,
    so the worker's ``--log-level`` decides both, unless the context has its own
    ``log_level`` for what it sends (:mod:`workpath.testing` captures lines that way,
    without touching the process's logging). Fields must be JSON-serialisable; others
    are sent as their ``repr``.
    """

    __slots__ = ("_context",)

    def __init__(self, context: Context) -> None:
        self._context = context

    def debug(self, message: str, /, **fields: Any) -> None:
        self._log("debug", message, fields)

    def info(self, message: str, /, **fields: Any) -> None:
        self._log("info", message, fields)

    def warning(self, message: str, /, **fields: Any) -> None:
        self._log("warning", message, fields)

    def error(self, message: str, /, **fields: Any) -> None:
        self._log("error", message, fields)

    def critical(self, message: str, /, **fields: Any) -> None:
        self._log("critical", message, fields)

    def exception(self, message: str, /, **fields: Any) -> None:
        """Log at error level with the exception being handled, as ``fields["traceback"]``."""
        fields["traceback"] = traceback.format_exc()
        self._log("error", message, fields)

    def _log(self, level: directives.LogLevel, message: str, fields: dict[str, Any]) -> None:
        number = _LEVELS[level]
        ctx = self._context
        local = logger.isEnabledFor(number)
        if local and run_lines.handlers:
            run_lines.log(number, "%s", _json_line(ctx, level, message, fields))
        elif local:
            logger.log(
                number,
                "[%s run=%s] %s%s",
                ctx.routine_id,
                ctx.run_id,
                message,
                "".join(f" {key}={value!r}" for key, value in fields.items()),
            )
        sent = local if ctx.log_level is None else number >= ctx.log_level
        if sent:
            ctx._channel.send_log(ctx.run_id, _log_frame(ctx.run_id, level, message, fields))


def _json_line(ctx: Context, level: directives.LogLevel, message: str, fields: dict[str, Any]) -> str:
    """One ``ctx.log`` line as a JSON object; fields that are not JSON are written as their ``repr``."""
    line: dict[str, Any] = {
        "time": directives.now().isoformat(),
        "level": level,
        "runID": ctx.run_id,
        "routineID": ctx.routine_id,
        "attempt": ctx.attempt,
        "workerID": ctx.worker_id,
        "message": str(message),
    }
    if ctx.parent_run_id is not None:
        line["parentRunID"] = ctx.parent_run_id
    if fields:
        line["fields"] = fields
    try:
        return json.dumps(line, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):  # keys that are not strings, or a cycle
        line["fields"] = repr(fields)
        return json.dumps(line, ensure_ascii=False)


def _log_frame(run_id: directives.RunID, level: directives.LogLevel, message: str, fields: dict[str, Any]) -> str:
    """The encoded ``v1.log`` entry of a line; fields that are not JSON are sent as their ``repr``."""
    entry = directives.Log(run_id=run_id, level=level, message=str(message), time=directives.now(), fields=fields)
    try:
        return directives.encode(entry)
    except ValueError:  # pydantic's serialisation error: a field is not JSON
        return directives.encode(entry.model_copy(update={"fields": {k: repr(v) for k, v in fields.items()}}))
