"""Jobs and tasks: one run of a routine on this worker, and the operation it runs.

A :class:`Job` is one attempt of a run on this worker: its ID (the run ID), its
attempt, and when it was created (received), started and completed. It wraps a
:class:`Task`: the operation to run (a routine definition), its context, and what
came of it (a result payload or an error, and a done flag). The run time is
``completed - started``; the round-trip time is ``(completed or now) - created``.

:meth:`Job.run` executes the task and records the outcome; it never raises for a
failure of the routine. Turning the outcome into directives is the runtime's job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
from collections.abc import Callable
from typing import Any, Final

from workpath import contexts, directives, routines

SHUTDOWN: Final = "worker shutting down"
"""Why a job was cancelled when the worker shut down under it: no report is sent."""

DRAINING: Final = "worker draining"
"""Why a draining worker hands a run back (``v1.routine.released``)."""

SUPERSEDED: Final = "superseded by a newer attempt"
"""Why a job was cancelled for a newer attempt of its run: no report is sent."""


class Task:
    """The operation (a routine definition) with its context, and its outcome once done."""

    __slots__ = ("context", "done", "error", "result", "routine")

    def __init__(self, routine: routines.RoutineDefinition[..., Any], context: contexts.Context) -> None:
        self.routine = routine
        self.context = context
        self.result: Any = None
        """What the routine returned (the payload), once done without error."""
        self.error: BaseException | None = None
        """Why the routine failed (or was cancelled, or timed out), once done."""
        self.done = False

    def __repr__(self) -> str:
        state = "failed" if self.error is not None else "done" if self.done else "pending"
        return f"<Task {self.routine.id} {state}>"


class Job:
    """One attempt of a run on this worker, wrapping the :class:`Task` it executes."""

    __slots__ = ("attempt", "cancel_reason", "completed", "created", "id", "runner", "started", "task", "thread")

    def __init__(
        self,
        *,
        run_id: directives.RunID,
        attempt: int,
        task: Task,
        created: datetime.datetime | None = None,
    ) -> None:
        self.id = run_id
        self.attempt = attempt
        self.task = task
        self.created = created or directives.now()
        """When the worker received the run."""
        self.started: datetime.datetime | None = None
        """When the task started."""
        self.completed: datetime.datetime | None = None
        """When the task completed (succeeded, failed, timed out or was cancelled)."""
        self.cancel_reason: str | None = None
        """Why the runtime cancelled the job, if it did."""
        self.runner: asyncio.Task[None] | None = None
        """The asyncio task that runs this job (the runtime's)."""
        self.thread: concurrent.futures.Future[Any] | None = None
        """For a plain ``def`` routine: its call in the thread pool."""

    def __repr__(self) -> str:
        return f"<Job {self.task.routine.id} run={self.id} attempt={self.attempt} {self.task!r}>"

    @property
    def run_time(self) -> datetime.timedelta | None:
        """``completed - started``, once completed."""
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    @property
    def round_trip_time(self) -> datetime.timedelta:
        """``completed - created``, or ``now - created`` while the job is not completed."""
        return (self.completed or directives.now()) - self.created

    def start(self) -> datetime.datetime:
        """Mark the job started; return when."""
        self.started = directives.now()
        return self.started

    def cancel(self, reason: str) -> bool:
        """Stop the job (its task is cancelled; a thread cannot be, its result will be dropped).

        Returns False if it was already done or cancelled.
        """
        if self.task.done or self.cancel_reason is not None:
            return False
        self.cancel_reason = reason
        self.task.context._cancel()
        if self.runner is not None:
            self.runner.cancel()
        return True

    async def run(self, executor: concurrent.futures.Executor) -> None:
        """Run the task; record its result or error and the completion time.

        Failures of the routine (including a timeout at the deadline, and a cancellation
        by :meth:`cancel`) end up in ``task.error``; only a cancellation from elsewhere
        (the loop shutting down) propagates.
        """
        task = self.task
        context = task.context
        if self.started is None:
            self.start()
        token = contexts._current.set(context)
        timed_out = False
        try:
            if context.deadline is None:
                task.result = await self._invoke(executor)
            else:
                loop = asyncio.get_running_loop()
                left = (context.deadline - directives.now()).total_seconds()
                if left <= 0:
                    raise TimeoutError(
                        f"routine {task.routine.id!r} reached its deadline ({context.deadline.isoformat()}) "
                        f"before it started"
                    )
                timeout = asyncio.timeout_at(loop.time() + left)
                try:
                    async with timeout:
                        task.result = await self._invoke(executor)
                except TimeoutError:
                    if not timeout.expired():
                        raise
                    timed_out = True
                    raise TimeoutError(
                        f"routine {task.routine.id!r} did not finish before its deadline "
                        f"({context.deadline.isoformat()})"
                    ) from None
        except asyncio.CancelledError as exc:
            task.error = exc
            if self.cancel_reason is None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    self.cancel_reason = SHUTDOWN  # not by cancel(): the loop is shutting down
                    raise
                # else: raised inside the routine (it awaited something cancelled): a failure
        except BaseException as exc:  # every failure of the routine is reported
            task.error = exc
        finally:
            contexts._current.reset(token)
            self.completed = directives.now()
            task.done = True
            if timed_out or self.cancel_reason is not None:
                context._cancel()  # a thread may still run: tell it
            else:
                context._abandon()

    def _invoke(self, executor: concurrent.futures.Executor) -> Any:
        """An awaitable of the routine's result."""
        task = self.task
        context = task.context
        if task.routine.is_async:
            return task.routine.fn(context, **context.params)
        self.thread = executor.submit(_call_in_thread, task.routine.fn, context)
        return asyncio.wrap_future(self.thread)


def _call_in_thread(fn: Callable[..., Any], context: contexts.Context) -> Any:
    token = contexts._current.set(context)
    try:
        return fn(context, **context.params)
    finally:
        contexts._current.reset(token)
