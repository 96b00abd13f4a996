"""The routine environment: run routines as a worker would, and play the service around them.

:class:`RoutineEnvironment` holds what the test configures (routines, stubs,
limits). Each top-level run gets a :class:`_Session`: the
:class:`~workpath.contexts.Channel` of its context and of the contexts of the
sub-runs it starts, with their event loop and thread pool. Runs are
:class:`~workpath.jobs.Job` objects, as on a worker, so cancellation, deadlines,
threads and ``workpath.context()`` behave as they do there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import inspect
import itertools
import logging
import types
from collections.abc import Iterable, Mapping
from typing import Any, Final

from workpath import contexts, directives, errors, jobs, reporting, routines
from workpath.testing import runs

WORKER_ID: Final = "test-worker"
CALLER_STOPPED: Final = "the caller stopped waiting"
PARENT_ENDED: Final = "the parent run ended"
MAX_MESSAGE_SIZE: Final = 1 << 20
"""The worker's default ``WORKPATH_MAX_MESSAGE_SIZE``: a larger result fails its run."""

THREADS: Final = 16

Definition = routines.RoutineDefinition[..., Any]


class RoutineEnvironment:
    """Runs routines as a worker would, and answers what they ask of the service, in this process.

    ``definitions`` are the routines that sub-routine calls (and runs by ID) may run:
    routine definitions, modules that define routines, or names of such modules.

    ``stubs`` answer sub-routine calls by routine ID instead (a stub wins over a
    definition with the same ID). A value is the result. A callable is called with
    the params as keyword arguments (and awaited if it returns an awaitable); what
    it returns or raises is the answer. An exception (instance or class) is raised.
    A stub that raises makes the caller's ``ctx.call`` raise
    :class:`~workpath.errors.RoutineFailedError` with the exception's type, message
    and retry intent, as a sub-routine that failed on a worker does.

    ``ctx.log`` lines at ``log_level`` and above are captured (as ``--log-level``
    decides what a worker sends), whatever the process's logging configuration,
    which is left alone: the lines reach the local ``workpath.routine`` logger as
    its level allows (pytest's ``caplog.set_level`` lowers it). Plain ``def``
    routines run in a pool of ``threads`` threads per top-level run;
    ``ctx.worker_id`` is ``worker_id``.
    """

    def __init__(
        self,
        definitions: Iterable[Definition | types.ModuleType | str] = (),
        /,
        *,
        stubs: Mapping[str, object] | None = None,
        worker_id: str = WORKER_ID,
        log_level: directives.LogLevel = "debug",
        max_message_size: int = MAX_MESSAGE_SIZE,
        threads: int = THREADS,
    ) -> None:
        self.definitions: Mapping[directives.RoutineID, Definition] = _index(definitions)
        self.worker_id = directives.WorkerID(worker_id)
        self.log_level: directives.LogLevel = log_level
        self.max_message_size = max_message_size
        self.threads = threads
        self._stubs: dict[directives.RoutineID, Definition] = {}
        self._requests: list[runs.SubroutineRequest] = []
        self._numbers = itertools.count(1)
        for routine_id, answer in (stubs or {}).items():
            self.stub(routine_id, answer)

    def __repr__(self) -> str:
        return f"<RoutineEnvironment routines={sorted(self.definitions)} stubs={sorted(self._stubs)}>"

    @property
    def requests(self) -> tuple[runs.SubroutineRequest, ...]:
        """Every sub-routine requested by the runs of this environment, oldest first."""
        return tuple(self._requests)

    def stub(self, routine_id: str, answer: object, /) -> None:
        """Answer the calls of ``routine_id`` with ``answer`` from now on (see the class for what it can be)."""
        checked = routines.check_routine_id(routine_id)
        self._stubs[checked] = _stub_routine(checked, answer)

    def start(self, routine: str | Definition, /, **params: Any) -> runs.RunHandle:
        """Start a run of ``routine`` with ``params`` on the running event loop; return its handle.

        ``routine`` is a definition, or the ID of a registered or stubbed routine. As on a
        worker, the run starts eagerly: an ``async def`` routine runs until its first
        ``await`` before this returns.
        """
        return self.start_with(routine, params)

    def start_with(
        self,
        routine: str | Definition,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout_seconds: float | None = None,
        attempt: int = 1,
    ) -> runs.RunHandle:
        """Like :meth:`start`, with options: a deadline ``timeout_seconds`` from now, the ``attempt`` number.

        Raises :class:`~workpath.errors.InvalidParamsError` at once if the params are not
        JSON (no real run can have them); params that do not fit the routine fail the run,
        as on a worker.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise errors.ContextError(
                "RoutineEnvironment.start() needs a running event loop: use 'await env.run(...)' in async "
                "code, or env.run_sync(...) in a plain test"
            ) from None
        definition: Definition | None
        if isinstance(routine, routines.RoutineDefinition):
            routine_id, definition = routine.id, routine
        else:
            routine_id = routines.check_routine_id(routine)
            definition = self._resolve(routine_id)
        start = directives.StartRoutine(
            run_id=self._new_run_id(),
            routine_id=routine_id,
            params=dict(params or {}),
            attempt=attempt,
            deadline=_deadline(timeout_seconds),
        )
        received = _received(start, what=f"the params for routine {routine_id!r}")
        assert isinstance(received, directives.StartRoutine)
        return _Session(self).launch(definition, received)

    async def run(self, routine: str | Definition, /, **params: Any) -> Any:
        """Run ``routine`` with ``params``; return its result or raise :class:`~workpath.testing.RunFailedError`."""
        return await self.start_with(routine, params).result()

    def run_sync(self, routine: str | Definition, /, **params: Any) -> Any:
        """:meth:`run` for plain (not async) tests: on a new event loop, until the run ends."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(routine, **params))
        raise errors.ContextError("env.run_sync() cannot run on an event loop: use 'await env.run(...)' there")

    # ---------------------------------------------------------------- for sessions

    def _resolve(self, routine_id: directives.RoutineID) -> Definition | None:
        return self._stubs.get(routine_id) or self.definitions.get(routine_id)

    def _new_run_id(self) -> directives.RunID:
        return directives.RunID(f"test-run-{next(self._numbers)}")

    def _new_request_id(self) -> directives.RequestID:
        return directives.RequestID(f"test-request-{next(self._numbers)}")

    def _loaded(self) -> set[directives.RoutineID]:
        return {*self.definitions, *self._stubs}


class _Session:
    """One top-level run and the sub-runs it started: the channel of their contexts."""

    def __init__(self, env: RoutineEnvironment) -> None:
        self._env = env
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(env.threads, thread_name_prefix="workpath-test")
        self._handles: dict[directives.RunID, runs.RunHandle] = {}
        self._children: dict[directives.RequestID, runs.RunHandle] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._top: runs.RunHandle | None = None
        self._log_level = logging.getLevelNamesMapping()[env.log_level.upper()]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def launch(self, definition: Definition | None, start: directives.StartRoutine) -> runs.RunHandle:
        """Start a run as a worker handed ``start`` does: refuse it, or run it as a job in its own task."""
        handle = runs.RunHandle(start, done=self._loop.create_future())
        if self._top is None:
            self._top = handle
        if definition is None:
            message = reporting.not_found_message(
                start.routine_id, worker_id=self._env.worker_id, known=self._env._loaded()
            )
            return self._refuse(handle, directives.ErrorType.ROUTINE_NOT_FOUND, errors.RoutineNotFoundError(message))
        try:
            definition.check_params(start.params)
        except errors.InvalidParamsError as exc:
            return self._refuse(handle, directives.ErrorType.INVALID_PARAMS, exc)
        context = contexts.Context(
            channel=self,
            run_id=start.run_id,
            routine_id=definition.id,
            attempt=start.attempt,
            params=start.params,
            worker_id=self._env.worker_id,
            deadline=start.deadline,
            parent_run_id=start.parent_run_id,
            log_level=self._log_level,
        )
        job = handle.job = jobs.Job(run_id=start.run_id, attempt=start.attempt, task=jobs.Task(definition, context))
        self._handles[start.run_id] = handle
        # Started eagerly, as a worker starts its jobs: the code before the first await runs now.
        runner = asyncio.Task(self._execute(handle, job), loop=self._loop, name=start.run_id, eager_start=True)
        if not runner.done():
            job.runner = runner
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        return handle

    def _refuse(
        self, handle: runs.RunHandle, kind: directives.ErrorType, exception: errors.WorkpathError
    ) -> runs.RunHandle:
        handle.finish(handle.ended(result=None, error=reporting.refusal(kind, exception), exception=exception))
        if handle is self._top:
            self._close()
        return handle

    async def _execute(self, handle: runs.RunHandle, job: jobs.Job) -> None:
        try:
            await job.run(self._executor)
        except asyncio.CancelledError:  # the loop is shutting down with the run unfinished
            handle.abandon()
            if handle is self._top:
                self._close()
            raise
        outcome = self._conclude(handle, job)
        if handle is self._top:
            await self._wind_down()
        handle.finish(outcome)

    def _conclude(self, handle: runs.RunHandle, job: jobs.Job) -> runs.Outcome:
        """The outcome a worker reports for a finished job; if it cannot say, the run fails as it would there."""
        try:
            return self._outcome(handle, job)
        except Exception as exc:  # a run must never be left without an outcome
            return handle.ended(result=None, error=reporting.unreportable(exc), exception=exc)

    def _outcome(self, handle: runs.RunHandle, job: jobs.Job) -> runs.Outcome:
        task = job.task
        if job.cancel_reason is not None:
            info = directives.ErrorInfo(type=directives.ErrorType.CANCELLED, message=job.cancel_reason)
            return handle.ended(result=None, error=info, exception=None)
        if task.error is not None:
            info = reporting.error_info(task.error)
            if not errors.is_deliberate(task.error):
                handle.logs.append(runs.log_line(reporting.traceback_log(job.id, task.error, info=info)))
            return handle.ended(result=None, error=info, exception=task.error)
        report = directives.RoutineCompleted(run_id=job.id, result=task.result, completed_at=directives.now())
        try:
            frame = reporting.result_frame(report, routine_id=handle.routine_id, limit=self._env.max_message_size)
        except errors.InvalidResultError as exc:
            info = reporting.refusal(directives.ErrorType.INVALID_RESULT, exc)
            return handle.ended(result=None, error=info, exception=exc)
        received = directives.decode_from_service(frame)
        assert isinstance(received, directives.RoutineCompleted)
        return handle.ended(result=received.result, error=None, exception=None)

    async def _wind_down(self) -> None:
        """Cancel the sub-runs nobody waits for any more, wait until they stop, then let the threads go."""
        current = asyncio.current_task()
        while others := [runner for runner in self._runners if runner is not current]:
            for handle in self._handles.values():
                if handle is not self._top:
                    handle.cancel(PARENT_ENDED)
            await asyncio.wait(others)
        self._close()

    def _close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)  # a thread still running cannot be stopped

    # ------------------------------------------------------------ the Channel

    def request_subroutine(
        self,
        parent: contexts.Context,
        routine_id: directives.RoutineID,
        params: dict[str, Any],
        *,
        timeout_seconds: float | None,
        pool: str | None,
    ) -> contexts.SubroutineCall:
        caller = self._handles.get(parent.run_id)
        job = caller.job if caller is not None else None
        if caller is None or job is None or job.task.context is not parent or parent.cancelled or job.task.done:
            raise errors.ContextError(
                f"run {parent.run_id} is no longer running here; it cannot start sub-routine {routine_id!r}"
            )
        request = directives.RequestSubroutine(
            request_id=self._env._new_request_id(),
            routine_id=routine_id,
            params=params,
            parent_run_id=parent.run_id,
            timeout_seconds=timeout_seconds,
            pool=pool,
        )
        received = _received(request, what=f"the params for sub-routine {routine_id!r}")
        assert isinstance(received, directives.RequestSubroutine)
        call = contexts.SubroutineCall(
            request_id=request.request_id,
            routine_id=routine_id,
            frame=directives.encode(request),
            parent_run_id=parent.run_id,
            future=self._loop.create_future(),
        )
        start = directives.StartRoutine(
            run_id=self._env._new_run_id(),
            routine_id=routine_id,
            params=received.params,
            parent_run_id=parent.run_id,
            deadline=_deadline(timeout_seconds),
        )
        child = self._children[request.request_id] = self.launch(self._env._resolve(routine_id), start)
        if child.job is not None:
            call.run_id, call.worker_id, call.started_at = child.run_id, self._env.worker_id, child.job.started
        record = runs.SubroutineRequest(routine_id, received.params, parent.run_id, timeout_seconds, pool, child)
        caller.requests.append(record)
        self._env._requests.append(record)
        child.when_done(lambda outcome: _answer(call, outcome))
        return call

    def forget_subroutine(self, call: contexts.SubroutineCall) -> None:
        child = self._children.pop(call.request_id, None)
        if child is not None and not child.done():  # not answered: the caller was cancelled
            child.cancel(CALLER_STOPPED)

    def send_log(self, run_id: directives.RunID, frame: str) -> None:
        handle = self._handles.get(run_id)
        if handle is None or handle.job is None or handle.job.task.done:
            return  # a worker drops the lines of a run that no longer runs
        entry = directives.decode_from_worker(frame)
        assert isinstance(entry, directives.Log)
        handle.logs.append(runs.log_line(entry))


def _answer(call: contexts.SubroutineCall, outcome: runs.Outcome) -> None:
    """Answer the caller as the service does when it forwards a sub-run's final report."""
    if call.future.done():
        return
    error = outcome.error
    if error is None:
        call.future.set_result(outcome.result)
    else:
        call.future.set_exception(
            errors.RoutineFailedError(
                call.routine_id, type=error.type, message=error.message, retryable=error.retryable
            )
        )


def _received(payload: directives.Payload, *, what: str) -> directives.Payload:
    """``payload`` as the other side receives it: encoded to JSON and decoded again."""
    try:
        frame = directives.encode(payload)
    except ValueError as exc:  # pydantic's serialisation error
        raise errors.InvalidParamsError(f"{what} are not JSON-serialisable: {exc}") from None
    if isinstance(payload, directives.StartRoutine):
        return directives.decode_from_service(frame)
    return directives.decode_from_worker(frame)


def _deadline(timeout_seconds: float | None) -> datetime.datetime | None:
    if timeout_seconds is None:
        return None
    return directives.now() + datetime.timedelta(seconds=timeout_seconds)


def _index(sources: Iterable[Definition | types.ModuleType | str]) -> dict[directives.RoutineID, Definition]:
    found: list[Definition] = []
    for source in sources:
        if isinstance(source, routines.RoutineDefinition):
            found.append(source)
        elif isinstance(source, types.ModuleType):
            found.extend(routines.collect([source]).values())
        else:
            found.extend(routines.load([source]).values())
    return routines.index(found)


def _stub_routine(routine_id: directives.RoutineID, answer: object) -> Definition:
    """A routine that answers with ``answer``: stubs run (and fail) as routines do."""

    async def stub(ctx: contexts.Context, /, **params: Any) -> Any:
        if isinstance(answer, BaseException) or (isinstance(answer, type) and issubclass(answer, BaseException)):
            raise answer
        if callable(answer):
            value = answer(**params)
            return await value if inspect.isawaitable(value) else value
        return answer

    stub.__qualname__ = f"stub[{routine_id}]"
    return routines.RoutineDefinition(routine_id, stub)
