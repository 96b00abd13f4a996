"""Sub-routine calls: the requests a worker's runs made, until their answers come.

A run's ``ctx.call`` becomes a ``v1.routine.request_start`` with a worker-local
request ID. The service forwards the child's ``starting`` and its final report,
tagged with that ID, and :class:`Calls` routes them to the waiting caller. A
request not answered yet is sent again after a reconnect; one nobody waits for any
more is cancelled, so that the child does not run for nobody.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Iterator
from typing import Any

from workpath import connecting, contexts, directives, errors

logger = logging.getLogger("workpath.worker")


class Calls:
    """The sub-routine calls of one worker's runs that wait for an answer, by request ID."""

    __slots__ = ("_limit", "_numbers", "_pending", "_prefix")

    def __init__(self, *, max_message_size: int) -> None:
        self._pending: dict[directives.RequestID, contexts.SubroutineCall] = {}
        self._prefix = f"{secrets.token_hex(4)}-"  # request IDs of another process of this worker differ
        self._numbers = itertools.count(1)
        self._limit = max_message_size

    def open(
        self,
        parent_run_id: directives.RunID,
        *,
        routine_id: directives.RoutineID,
        params: dict[str, Any],
        timeout_seconds: float | None,
        pool: str | None,
        future: asyncio.Future[Any],
    ) -> contexts.SubroutineCall:
        """A new call, waiting for its answer in ``future``; its ``frame`` is the request to send.

        Raises :class:`~workpath.errors.InvalidParamsError` if the params cannot be sent.
        """
        request_id = directives.RequestID(f"{self._prefix}{next(self._numbers)}")
        request = directives.RequestSubroutine(
            request_id=request_id,
            routine_id=routine_id,
            params=params,
            parent_run_id=parent_run_id,
            timeout_seconds=timeout_seconds,
            pool=pool,
        )
        try:
            frame = directives.encode(request)
        except ValueError as exc:
            raise errors.InvalidParamsError(
                f"the params for sub-routine {routine_id!r} are not JSON-serialisable: {exc}"
            ) from None
        if connecting.too_large(frame, limit=self._limit):
            raise errors.InvalidParamsError(
                f"the params for sub-routine {routine_id!r} are too large: {len(frame.encode())} bytes "
                f"encoded, over {self._limit} (WORKPATH_MAX_MESSAGE_SIZE)"
            )
        call = contexts.SubroutineCall(
            request_id=request_id, routine_id=routine_id, frame=frame, parent_run_id=parent_run_id, future=future
        )
        self._pending[request_id] = call
        return call

    def close(self, call: contexts.SubroutineCall) -> str | None:
        """Stop waiting for ``call``; return the frame that cancels its child if no answer came."""
        if self._pending.pop(call.request_id, None) is None:
            return None
        # No answer came: the caller was cancelled (ctx.gather after a sibling failed, or its own run),
        # so the child would run for nobody.
        return directives.encode(
            directives.CancelSubroutine(request_id=call.request_id, parent_run_id=call.parent_run_id)
        )

    def unanswered(self) -> Iterator[str]:
        """The request frames of the calls whose caller still waits (to send again after a reconnect)."""
        return (call.frame for call in self._pending.values() if not call.future.done())

    def cancel_all(self) -> None:
        """Stop every caller waiting (the worker is shutting down)."""
        for call in self._pending.values():
            call.future.cancel()
        self._pending.clear()

    # ------------------------------------------------- the forwarded reports of the children

    def starting(self, report: directives.RoutineStarting) -> None:
        """Record where and when a child started."""
        call = self._pending.get(report.request_id) if report.request_id is not None else None
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

    def completed(self, report: directives.RoutineCompleted) -> None:
        """Give the caller the child's result."""
        call = self._pending.pop(report.request_id, None) if report.request_id is not None else None
        if call is None:
            logger.debug("ignoring %s for unknown request %s", report.KEY, report.request_id)
            return
        _started(call, report)
        if not call.future.done():
            call.future.set_result(report.result)

    def failed(self, report: directives.RoutineFailed) -> None:
        """Raise the child's error in the caller, as a :class:`~workpath.errors.RoutineFailedError`."""
        call = self._pending.pop(report.request_id, None) if report.request_id is not None else None
        if call is None:
            logger.debug("ignoring %s for unknown request %s", report.KEY, report.request_id)
            return
        _started(call, report)
        if not call.future.done():
            error = report.error
            call.future.set_exception(
                errors.RoutineFailedError(
                    call.routine_id, type=error.type, message=error.message, retryable=error.retryable
                )
            )


def _started(call: contexts.SubroutineCall, report: directives.RoutineCompleted | directives.RoutineFailed) -> None:
    """What a child's final report says of its start, for a call whose ``starting`` did not come on its own (a
    child that never started, or a request refused, leaves the call as it was)."""
    if report.started_at is not None:
        call.run_id = report.run_id
        call.worker_id = report.worker_id
        call.started_at = report.started_at
