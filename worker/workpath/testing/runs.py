"""What a test sees of a run in a :class:`~workpath.testing.RoutineEnvironment`.

A :class:`RunHandle` while it goes (its log lines and sub-routine requests so far;
cancel it, wait for it), an :class:`Outcome` once it ended: the result as the
service receives it, or the error as it crosses the wire, which
:class:`RunFailedError` carries when a test asks for the result of a failed run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any, Final

from workpath import directives, errors, jobs

CANCELLED_BY_TEST: Final = "cancelled by the test"


@dataclasses.dataclass(frozen=True, slots=True)
class LogLine:
    """One ``ctx.log`` line of a run, as the service receives it."""

    level: directives.LogLevel
    message: str
    fields: Mapping[str, Any]
    """JSON values; a value that is not JSON arrives as its ``repr``."""

    time: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class SubroutineRequest:
    """One sub-routine a run asked for (``ctx.call``), and the run that answers it."""

    routine_id: directives.RoutineID
    params: Mapping[str, Any]
    """As the sub-routine receives them: decoded from JSON."""

    parent_run_id: directives.RunID
    timeout_seconds: float | None
    pool: str | None
    run: RunHandle
    """The in-process run that answers it: a registered routine's, or a stub's."""


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended: its result as the service receives it, or its error as it crosses the wire."""

    routine_id: directives.RoutineID
    run_id: directives.RunID
    result: Any
    """What the routine returned, encoded to JSON and decoded again (a dataclass becomes a dict)."""

    error: directives.ErrorInfo | None
    """Why it failed (``type``, ``message``, ``retryable``, ``delay``); None if it succeeded."""

    exception: BaseException | None
    """The exception behind ``error``, if there is one (there is none for a cancellation)."""

    logs: tuple[LogLine, ...]
    requests: tuple[SubroutineRequest, ...]

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled (by the test, or because its caller stopped waiting)."""
        return self.error is not None and self.error.type == directives.ErrorType.CANCELLED

    def unwrap(self) -> Any:
        """The result; raise :class:`RunFailedError` (caused by :attr:`exception`) if the run failed."""
        if self.error is None:
            return self.result
        raise RunFailedError(self) from self.exception


class RunFailedError(errors.WorkpathError):
    """A run in a :class:`~workpath.testing.RoutineEnvironment` failed.

    It carries the error as it would cross the wire (``type``, ``message``,
    ``retryable``, ``delay``); the exception the routine raised, if any, is its
    ``__cause__``.
    """

    def __init__(self, outcome: Outcome) -> None:
        error = outcome.error
        assert error is not None, "a run that succeeded did not fail"
        retry = "not retryable"
        if error.retryable:
            retry = "retryable" if error.delay is None else f"retryable after {error.delay:g}s"
        super().__init__(
            f"run {outcome.run_id} of {outcome.routine_id!r} failed: {error.type}: {error.message} ({retry})"
        )
        self.outcome = outcome
        self.type = error.type
        self.message = error.message
        self.retryable = error.retryable
        self.delay = error.delay


class RunHandle:
    """A run started in a :class:`~workpath.testing.RoutineEnvironment`: watch it, cancel it, wait for its end."""

    __slots__ = ("_done", "job", "logs", "outcome", "params", "parent_run_id", "requests", "routine_id", "run_id")

    def __init__(self, start: directives.StartRoutine, *, done: asyncio.Future[Outcome]) -> None:
        self.routine_id = start.routine_id
        self.run_id = start.run_id
        self.params: Mapping[str, Any] = start.params
        """As the routine receives them: decoded from JSON."""
        self.parent_run_id = start.parent_run_id
        self.logs: list[LogLine] = []
        """Its ``ctx.log`` lines so far."""
        self.requests: list[SubroutineRequest] = []
        """The sub-routines it asked for so far, oldest first."""
        self.outcome: Outcome | None = None
        """How it ended, once it did (a top-level run ends once its sub-runs have stopped too)."""
        self.job: jobs.Job | None = None
        """The job that runs it; None if it was refused (unknown routine, params that do not fit)."""
        self._done = done

    def __repr__(self) -> str:
        state = "running" if self.outcome is None else "succeeded" if self.outcome.succeeded else "failed"
        return f"<RunHandle {self.routine_id} run={self.run_id} {state}>"

    def done(self) -> bool:
        return self.outcome is not None

    def cancel(self, reason: str = CANCELLED_BY_TEST) -> bool:
        """Cancel the run, as ``v1.routine.cancel`` from the service would.

        An ``async def`` routine gets ``asyncio.CancelledError``; a plain ``def`` one sees
        ``ctx.cancelled`` turn true (a thread cannot be interrupted). The run fails with
        the type ``Cancelled`` and ``reason`` as message. Returns False if it had ended.
        """
        return self.job is not None and self.job.cancel(reason)

    async def wait(self) -> Outcome:
        """Wait until the run has ended and return its :class:`Outcome`; this never raises for a failed run."""
        return await asyncio.shield(self._done)

    async def result(self) -> Any:
        """Wait until the run has ended; return its result or raise :class:`RunFailedError`."""
        return (await self.wait()).unwrap()

    def ended(self, *, result: Any, error: directives.ErrorInfo | None, exception: BaseException | None) -> Outcome:
        """The outcome of this run with what it logged and requested until now (for the environment)."""
        return Outcome(
            routine_id=self.routine_id,
            run_id=self.run_id,
            result=result,
            error=error,
            exception=exception,
            logs=tuple(self.logs),
            requests=tuple(self.requests),
        )

    def finish(self, outcome: Outcome) -> None:
        """Record how the run ended and wake those waiting (for the environment)."""
        self.outcome = outcome
        if not self._done.done():
            self._done.set_result(outcome)

    def abandon(self) -> None:
        """The loop is shutting down with the run unfinished: those waiting get ``CancelledError``."""
        self._done.cancel()

    def when_done(self, callback: Callable[[Outcome], None]) -> None:
        """Call ``callback`` with the outcome once the run has ended (soon, if it has already)."""
        self._done.add_done_callback(lambda done: None if done.cancelled() else callback(done.result()))


def log_line(entry: directives.Log) -> LogLine:
    """A ``v1.log`` entry as a test sees it."""
    return LogLine(entry.level, entry.message, entry.fields, entry.time)
