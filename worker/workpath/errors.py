"""The errors of the worker package.

Every error raised on purpose by :mod:`workpath` derives from :class:`WorkpathError`.
Inside a routine, retry intent is a type: raise :class:`TemporaryError` for a failure
that a later attempt may not hit, :class:`PermanentError` for one that it will.
Any other exception is treated as permanent unless it is one of the few builtin
types that usually mean "try again" (see :func:`is_retryable`).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any


class WorkpathError(Exception):
    """The base of every error the workpath package raises."""


class DirectiveError(WorkpathError):
    """A directive could not be decoded or is not allowed here.

    ``code`` is machine-readable and travels in ``v1.error``; ``in_reply_to`` is the
    payloadKey of the offending directive when it could be read.
    """

    def __init__(self, code: str, message: str, *, in_reply_to: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.in_reply_to = in_reply_to


class RoutineDefinitionError(WorkpathError, TypeError):
    """A function decorated with ``@workpath.routine`` cannot be a routine."""


class RoutineNotFoundError(WorkpathError, LookupError):
    """The worker was asked to run a routine ID it does not have."""


class InvalidParamsError(WorkpathError, TypeError):
    """The params of a run do not bind to its routine's signature (missing or unexpected names)."""


class InvalidResultError(WorkpathError, TypeError):
    """A routine returned a result that cannot be sent: not JSON-serialisable, or too large."""


class ContextError(WorkpathError, RuntimeError):
    """The routine context was used where it cannot work.

    Outside a routine (``workpath.context()``), or a blocking call on the event loop
    (``ctx.call_sync()`` in an ``async def`` routine).
    """


class AuthenticationError(WorkpathError):
    """The directive service refused the worker's token."""


class TemporaryError(WorkpathError):
    """A failure worth retrying: the run is retried while its retry limit allows.

    ``delay`` (seconds), when given, overrides the Routine's backoff for this retry; it
    is checked here, where the routine raises it, so that a bad one fails the run with
    a clear ``ValueError`` instead of a report the service cannot accept.
    """

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        if delay is not None and not _is_delay(delay):
            raise ValueError(
                f"TemporaryError delay must be a finite number of seconds >= 0 or None, got {delay!r}; "
                f"pass delay=0 to retry at once, or leave it out to use the Routine's backoff"
            )
        super().__init__(message)
        self.delay = delay


def _is_delay(value: object) -> bool:
    """Whether ``value`` is a number of seconds to wait: finite and not negative (a bool is no number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


class PermanentError(WorkpathError):
    """A failure that no retry will fix: the run fails at once."""


class ReportError(WorkpathError):
    """The worker could not build the final report of a run; the run fails with this instead, not retried.

    The last resort that keeps a run from staying running forever: e.g. a routine's
    exception whose ``str()`` fails, or an error report over the frame limit.
    """


class RoutineFailedError(WorkpathError):
    """A sub-routine awaited with ``ctx.call`` failed; carries the remote error."""

    def __init__(self, routine_id: str, *, type: str, message: str, retryable: bool) -> None:
        super().__init__(f"sub-routine {routine_id!r} failed: {type}: {message}")
        self.routine_id = routine_id
        self.type = type
        self.message = message
        self.retryable = retryable


class ClientError(WorkpathError):
    """A :class:`workpath.Client` cannot talk to the service: unreachable, token refused, connection lost, or a
    request it refused as a whole. The message names what to fix."""


class ClientAuthenticationError(ClientError, AuthenticationError):
    """The service refused the client's token (or RBAC refused what it asked)."""


class RunNotFoundError(ClientError, LookupError):
    """The service knows no run of that ID (in that namespace): never submitted, or finished long ago."""


class SubmissionError(ClientError):
    """The service refused to start a run (params over its limit, a Routine it could not create).

    ``type`` and ``message`` are the service's; ``accepted`` holds, for :meth:`workpath.Client.submit_many`, the
    handles of the runs of the same call that were started (None where refused), so that none is lost.
    """

    def __init__(self, message: str, *, type: str, accepted: list[Any] | None = None) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.accepted = accepted or []


class RunFailedError(WorkpathError):
    """A run awaited through :class:`workpath.Client` failed; carries the remote error's type and message."""

    def __init__(self, run_id: str, *, routine_id: str | None, type: str, message: str, retryable: bool) -> None:
        what = f"run {run_id} of {routine_id}" if routine_id else f"run {run_id}"
        super().__init__(f"{what} failed: {type}: {message}")
        self.run_id = run_id
        self.routine_id = routine_id
        self.type = type
        self.message = message
        self.retryable = retryable


class RunCancelledError(RunFailedError):
    """A run awaited through :class:`workpath.Client` was cancelled (by a client, its Routine's deletion, its
    parent's end); ``message`` says by what."""


_RETRYABLE_BUILTINS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    asyncio.TimeoutError,
)


def is_deliberate(exc: BaseException) -> bool:
    """Whether a failure was raised on purpose (a workpath error, or a timeout): it needs no traceback."""
    return isinstance(exc, WorkpathError | TimeoutError)


def is_retryable(exc: BaseException) -> bool:
    """Whether a failure should be retried, judged from its type."""
    if isinstance(exc, TemporaryError):
        return True
    if isinstance(exc, PermanentError | RoutineDefinitionError | RoutineNotFoundError):
        return False
    if isinstance(exc, RoutineFailedError):
        return exc.retryable
    return isinstance(exc, _RETRYABLE_BUILTINS)
