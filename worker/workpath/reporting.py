"""Final reports: how a run ended, as a frame the service can always accept.

A run ends ``completed`` (with its result), ``failed`` (with an error that says
what went wrong and whether to retry) or ``released`` (handed back by a draining
worker). A result that cannot be sent (not JSON, or over the frame limit) fails
the run instead of losing it; a failure not raised on purpose also sends its
traceback to the run's log.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Final

from workpath import connecting, directives, errors, jobs

logger = logging.getLogger("workpath.worker")

MAX_ERROR_MESSAGE: Final = 8192
"""Longest error message sent; a longer one is truncated."""

_SHOWN_ROUTINES: Final = 20
"""How many loaded routines an unknown-routine error lists."""


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

    def final(self, job: jobs.Job) -> str:
        """The final report of a finished job: its outcome, or why its result cannot be sent."""
        payload = self._outcome(job)
        try:
            frame = directives.encode(payload)
        except ValueError as exc:  # pydantic's serialisation error: the result is not JSON
            frame = directives.encode(self._failure(job, self._bad_result(job, f"is not JSON-serialisable: {exc}")))
        if connecting.too_large(frame, limit=self._limit):
            size = len(frame.encode())
            problem = (
                f"is too large: {size} bytes encoded, over {self._limit} (WORKPATH_MAX_MESSAGE_SIZE); "
                f"store large data elsewhere and return a reference"
            )
            frame = directives.encode(self._failure(job, self._bad_result(job, problem)))
        return frame

    def released(self, run_id: directives.RunID, attempt: int) -> str:
        """The report of a run a draining worker hands back without running it."""
        return directives.encode(directives.Released(run_id=run_id, attempt=attempt, reason=jobs.DRAINING))

    def not_found(self, start: directives.StartRoutine) -> str:
        """The report of a run of a routine this worker does not have."""
        known = self._known
        shown = ", ".join(known[:_SHOWN_ROUTINES])
        if len(known) > _SHOWN_ROUTINES:
            shown += f" and {len(known) - _SHOWN_ROUTINES} more"
        message = f"routine {start.routine_id!r} is not loaded on worker {self._worker_id} (it has: {shown})"
        return self._rejected(start, kind=directives.ErrorType.ROUTINE_NOT_FOUND, message=message)

    def invalid_params(self, start: directives.StartRoutine, error: errors.InvalidParamsError) -> str:
        """The report of a run whose params do not fit its routine's signature."""
        return self._rejected(start, kind=directives.ErrorType.INVALID_PARAMS, message=str(error))

    def _rejected(self, start: directives.StartRoutine, *, kind: directives.ErrorType, message: str) -> str:
        """The report of a run that cannot even start: it fails at once, not retryable."""
        logger.warning("run %s of %s fails at once: %s", start.run_id, start.routine_id, message)
        return directives.encode(
            directives.RoutineFailed(
                run_id=start.run_id,
                attempt=start.attempt,
                error=directives.ErrorInfo(type=kind, message=message, retryable=False),
                completed_at=directives.now(),
            )
        )

    def _outcome(self, job: jobs.Job) -> directives.Payload:
        task = job.task
        reason = job.cancel_reason
        payload: directives.Payload
        if reason == jobs.DRAINING:
            payload = directives.Released(run_id=job.id, attempt=job.attempt, reason=jobs.DRAINING)
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
                "run %s attempt %d of %s: %s after %s", job.id, job.attempt, task.routine.id, payload.KEY, job.run_time
            )
        return payload

    def _failure(self, job: jobs.Job, error: directives.ErrorInfo) -> directives.RoutineFailed:
        return directives.RoutineFailed(
            run_id=job.id, attempt=job.attempt, error=error, completed_at=job.completed or directives.now()
        )

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
        delay = error.delay if isinstance(error, errors.TemporaryError) else None
        if not isinstance(error, errors.WorkpathError | TimeoutError):
            # Not raised on purpose: show where, here and in the run's log.
            logger.error("run %s attempt %d of %s failed", job.id, job.attempt, job.task.routine.id, exc_info=error)
            self._send_log(job.id, _traceback_log(job, error, message))
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s attempt %d failed: %r", job.id, job.attempt, error)
        return directives.ErrorInfo(
            type=type(error).__name__, message=message, retryable=errors.is_retryable(error), delay=delay
        )


def _traceback_log(job: jobs.Job, error: BaseException, message: str) -> str:
    entry = directives.Log(
        run_id=job.id,
        level="error",
        message=f"{type(error).__name__}: {message}",
        time=directives.now(),
        fields={"traceback": "".join(traceback.format_exception(error))},
    )
    return directives.encode(entry)
