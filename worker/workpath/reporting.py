"""Final reports: how a run ended, as a frame the service can always accept.

A run ends ``completed`` (with its result), ``failed`` (with an error that says
what went wrong and whether to retry) or ``released`` (handed back by a draining
worker). A result that cannot be sent (not JSON, or over the frame limit) fails
the run instead of losing it; a failure not raised on purpose also sends its
traceback to the run's log; and a report that cannot be built at all fails the
run with a :class:`~workpath.errors.ReportError`, so that no run stays running.

The functions here say how an outcome becomes what crosses the wire; the worker's
:class:`Reporter` and :mod:`workpath.testing` both use them, so a test sees what a
service would.
"""

from __future__ import annotations

import datetime
import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Final

from workpath import connecting, directives, errors, jobs

logger = logging.getLogger("workpath.worker")

MAX_ERROR_MESSAGE: Final = 8192
"""Longest error message sent; a longer one is truncated."""

MAX_REPORT_PROBLEM: Final = 512
"""Longest description of why a report could not be built: a last-resort report must fit any frame limit."""

_SHOWN_ROUTINES: Final = 20
"""How many loaded routines an unknown-routine error lists."""


def error_info(error: BaseException) -> directives.ErrorInfo:
    """A routine's failure as it crosses the wire: its class name, (truncated) message and retry intent."""
    delay = error.delay if isinstance(error, errors.TemporaryError) else None
    return directives.ErrorInfo(
        type=type(error).__name__,
        message=_truncated(str(error) or repr(error), MAX_ERROR_MESSAGE),
        retryable=errors.is_retryable(error),
        delay=delay,
    )


def refusal(kind: directives.ErrorType, error: errors.WorkpathError) -> directives.ErrorInfo:
    """The error of a run that workpath fails itself (unknown routine, params or result that do not fit)."""
    return directives.ErrorInfo(type=kind, message=str(error), retryable=False)


def unreportable(problem: BaseException) -> directives.ErrorInfo:
    """The last-resort error of a run whose report could not be built because of ``problem``."""
    try:
        detail = f"{type(problem).__name__}: {problem}"
    except Exception:  # its str() fails too: say what can be said
        detail = type(problem).__name__
    message = f"the worker could not report how the run ended ({detail})"
    return directives.ErrorInfo(
        type=errors.ReportError.__name__, message=_truncated(message, MAX_REPORT_PROBLEM), retryable=False
    )


def result_frame(report: directives.RoutineCompleted, *, routine_id: directives.RoutineID, limit: int) -> str:
    """``report`` encoded; raise :class:`~workpath.errors.InvalidResultError` if its result cannot be sent.

    It cannot when it is not JSON, or when the frame is over ``limit`` bytes
    (``WORKPATH_MAX_MESSAGE_SIZE``).
    """
    try:
        frame = directives.encode(report)
    except ValueError as exc:  # pydantic's serialisation error: the result is not JSON
        raise _bad_result(routine_id, report.result, f"is not JSON-serialisable: {exc}") from None
    if connecting.too_large(frame, limit=limit):
        problem = (
            f"is too large: {len(frame.encode())} bytes encoded, over {limit} (WORKPATH_MAX_MESSAGE_SIZE); "
            f"store large data elsewhere and return a reference"
        )
        raise _bad_result(routine_id, report.result, problem)
    return frame


def not_found_message(
    routine_id: directives.RoutineID, *, worker_id: directives.WorkerID, known: Iterable[directives.RoutineID]
) -> str:
    """Why a run of ``routine_id`` fails on a worker that has only the ``known`` routines."""
    loaded = sorted(known)
    shown = ", ".join(loaded[:_SHOWN_ROUTINES]) or "none"
    if len(loaded) > _SHOWN_ROUTINES:
        shown += f" and {len(loaded) - _SHOWN_ROUTINES} more"
    return f"routine {routine_id!r} is not loaded on worker {worker_id} (it has: {shown})"


def traceback_log(run_id: directives.RunID, error: BaseException, *, info: directives.ErrorInfo) -> directives.Log:
    """The run's log line for a failure not raised on purpose (see :func:`~workpath.errors.is_deliberate`)."""
    return directives.Log(
        run_id=run_id,
        level="error",
        message=f"{info.type}: {info.message}",
        time=directives.now(),
        fields={"traceback": "".join(traceback.format_exception(error))},
    )


class Reporter:
    """Builds the final report frames of one worker's runs.

    ``send_log`` sends an encoded ``v1.log`` frame of a run (for the traceback of an
    unexpected failure); it is called while the run is still running here.
    """

    __slots__ = ("_known", "_limit", "_send_log", "_worker_id")

    def __init__(
        self,
        *,
        worker_id: directives.WorkerID,
        routine_ids: Iterable[directives.RoutineID],
        max_message_size: int,
        send_log: Callable[[directives.RunID, str], None],
    ) -> None:
        self._worker_id = worker_id
        self._known = sorted(routine_ids)
        self._limit = max_message_size
        self._send_log = send_log

    def final(self, job: jobs.Job, *, started_at: datetime.datetime | None = None) -> str:
        """The final report of a finished job: its outcome, or why it cannot be sent; this never raises.

        ``started_at``: the job's start, when it was not reported on its own.
        """
        try:
            return self._final(job, started_at)
        except Exception as exc:  # a run must never be left without a report
            logger.exception(
                "run %s attempt %d: its final report cannot be built; failing the run", job.id, job.attempt
            )
            return directives.encode(self._failure(job, unreportable(exc), started_at))

    def released(self, run_id: directives.RunID, attempt: int) -> str:
        """The report of a run a draining worker hands back without running it."""
        return directives.encode(directives.Released(run_id=run_id, attempt=attempt, reason=jobs.DRAINING))

    def not_found(self, start: directives.StartRoutine) -> str:
        """The report of a run of a routine this worker does not have."""
        message = not_found_message(start.routine_id, worker_id=self._worker_id, known=self._known)
        return self._rejected(
            start, refusal(directives.ErrorType.ROUTINE_NOT_FOUND, errors.RoutineNotFoundError(message))
        )

    def invalid_params(self, start: directives.StartRoutine, error: errors.InvalidParamsError) -> str:
        """The report of a run whose params do not fit its routine's signature."""
        return self._rejected(start, refusal(directives.ErrorType.INVALID_PARAMS, error))

    def _rejected(self, start: directives.StartRoutine, error: directives.ErrorInfo) -> str:
        """The report of a run that cannot even start: it fails at once, not retryable."""
        logger.warning("run %s of %s fails at once: %s", start.run_id, start.routine_id, error.message)
        return directives.encode(
            directives.RoutineFailed(
                run_id=start.run_id, attempt=start.attempt, error=error, completed_at=directives.now()
            )
        )

    def _final(self, job: jobs.Job, started_at: datetime.datetime | None) -> str:
        payload = self._outcome(job, started_at)
        if isinstance(payload, directives.RoutineCompleted):
            try:
                return result_frame(payload, routine_id=job.task.routine.id, limit=self._limit)
            except errors.InvalidResultError as exc:
                logger.warning("run %s: %s", job.id, exc)
                payload = self._failure(job, refusal(directives.ErrorType.INVALID_RESULT, exc), started_at)
        frame = directives.encode(payload)
        if connecting.too_large(frame, limit=self._limit):
            raise errors.ReportError(
                f"its {payload.KEY} report is {len(frame.encode())} bytes encoded, "
                f"over {self._limit} (WORKPATH_MAX_MESSAGE_SIZE)"
            )
        return frame

    def _outcome(self, job: jobs.Job, started_at: datetime.datetime | None) -> directives.Payload:
        task = job.task
        reason = job.cancel_reason
        payload: directives.Payload
        if reason == jobs.DRAINING:
            payload = directives.Released(run_id=job.id, attempt=job.attempt, reason=jobs.DRAINING)
        elif reason is not None:
            cancelled = directives.ErrorInfo(type=directives.ErrorType.CANCELLED, message=reason)
            payload = self._failure(job, cancelled, started_at)
        elif task.error is not None:
            payload = self._failure(job, self._error_info(job, task.error), started_at)
        else:
            payload = directives.RoutineCompleted(
                run_id=job.id,
                attempt=job.attempt,
                result=task.result,
                completed_at=job.completed or directives.now(),
                started_at=started_at,
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "run %s attempt %d of %s: %s after %s", job.id, job.attempt, task.routine.id, payload.KEY, job.run_time
            )
        return payload

    def _failure(
        self, job: jobs.Job, error: directives.ErrorInfo, started_at: datetime.datetime | None
    ) -> directives.RoutineFailed:
        return directives.RoutineFailed(
            run_id=job.id,
            attempt=job.attempt,
            error=error,
            completed_at=job.completed or directives.now(),
            started_at=started_at,
        )

    def _error_info(self, job: jobs.Job, error: BaseException) -> directives.ErrorInfo:
        info = error_info(error)
        if not errors.is_deliberate(error):
            # Not raised on purpose: show where, here and in the run's log.
            logger.error("run %s attempt %d of %s failed", job.id, job.attempt, job.task.routine.id, exc_info=error)
            self._send_log(job.id, directives.encode(traceback_log(job.id, error, info=info)))
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s attempt %d failed: %r", job.id, job.attempt, error)
        return info


def _bad_result(routine_id: directives.RoutineID, result: object, problem: str) -> errors.InvalidResultError:
    kind = type(result)
    return errors.InvalidResultError(
        f"routine {routine_id!r} returned a {kind.__module__}.{kind.__qualname__} that {problem}; "
        f"return JSON data (dict, list, str, int, float, bool, None), a dataclass or a pydantic model"
    )


def _truncated(message: str, limit: int) -> str:
    return message if len(message) <= limit else message[:limit] + "... (truncated)"
