"""The worker runtime: the directives it gets, the jobs it runs, and how it drains.

:class:`Worker` says ``v1.ready`` on every connection (its
:class:`~workpath.connecting.Connection` keeps one up), answers pulse checks, runs
the routines it is asked to run as :class:`~workpath.jobs.Job` objects and reports
them (:mod:`workpath.reporting` builds the final reports), forwards sub-routine
requests and their answers (it is the :class:`~workpath.contexts.Channel` of its
runs' contexts), and drains on request (SIGTERM/SIGINT under :func:`run_worker`).

Reports (``starting`` and the finals: ``completed``, ``failed``, ``released``) stay
in the connection's replay buffer until a pulse check confirms them, and are sent
again after a reconnect, as are unanswered sub-routine requests; the service drops
the duplicates.

With a status file (``--status-file``), the worker records there whether it is
connecting, connected, reconnecting or draining, and refreshes it every
``--status-interval`` from its event loop: what ``workpath probe ready|live``
checks (:mod:`workpath.probing`). Nothing is written per directive.

Each job is one asyncio task, started eagerly: a routine that does not await
finishes inside the handler of its ``request_start`` without a trip through the
event loop. Plain ``def`` routines run in a thread pool as large as the slots.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from workpath import calling, connecting, contexts, directives, errors, jobs, probing, reporting, routines, settings

logger = logging.getLogger("workpath.worker")

EXIT_OK: Final = 0
EXIT_TOKEN_REFUSED: Final = 3

_SHUTDOWN_GRACE: Final = 2.0
"""Seconds to wait for cancelled jobs to finish their bookkeeping at shutdown."""


class Worker:
    """A worker: runs the routines it is given for the directive service at ``settings.url``.

    ``await worker.run()`` returns the exit code: 0 after a drain (:meth:`drain`),
    3 if the service refused the token.
    """

    def __init__(
        self,
        settings: settings.WorkerSettings,
        definitions: Iterable[routines.RoutineDefinition[..., Any]],
    ) -> None:
        self.settings = settings
        self.definitions: Mapping[directives.RoutineID, routines.RoutineDefinition[..., Any]] = routines.index(
            definitions
        )
        if not self.definitions:
            raise errors.RoutineDefinitionError("a worker needs at least one routine")
        self.worker_id = directives.WorkerID(settings.worker_id)
        # runs
        self._jobs: dict[directives.RunID, jobs.Job] = {}
        self._calls = calling.Calls(max_message_size=settings.max_message_size)
        self._abandoned: set[concurrent.futures.Future[Any]] = set()
        self._reporter = reporting.Reporter(
            worker_id=self.worker_id,
            routine_ids=self.definitions,
            max_message_size=settings.max_message_size,
            send_log=self._send_log,
        )
        # lifecycle
        self._draining = False
        self._idle = asyncio.Event()
        self._settled = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._drain_requested = False
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._status: probing.StatusFile | None = None
        if settings.status_file is not None:
            self._status = probing.StatusFile(
                settings.status_file, worker_id=settings.worker_id, interval=settings.status_interval
            )
        self._refresher: asyncio.Task[None] | None = None
        # connection: directives in go straight from this table to their handler
        handlers: connecting.Handlers = {
            directives.CheckPulse: self._on_check_pulse,
            directives.StartRoutine: self._on_start_routine,
            directives.CancelRoutine: self._on_cancel_routine,
            directives.RoutineStarting: self._calls.starting,
            directives.RoutineCompleted: self._calls.completed,
            directives.RoutineFailed: self._calls.failed,
            directives.Error: self._on_error,
        }
        self._connection = connecting.Connection(
            settings, handlers=handlers, on_open=self._greet, on_close=self._settled.set, on_retry=self._on_retry
        )
        self._send: Callable[[str], int] = self._connection.send
        self._replay = self._connection.replay_buffer

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} jobs={len(self._jobs)} connected={self._connection.connected}>"

    # ------------------------------------------------------------------ public

    @property
    def running(self) -> Mapping[directives.RunID, jobs.Job]:
        """The jobs running now, by run ID."""
        return self._jobs

    @property
    def replay_buffer(self) -> connecting.ReplayBuffer:
        """The reports the service has not confirmed yet."""
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
        self._set_status("connecting", self.settings.url)
        if self._status is not None:
            self._refresher = loop.create_task(self._status.keep_fresh(), name="workpath-status")
        outcome = ""
        try:
            await self._connection.run()
            outcome = "drained"
        except errors.AuthenticationError as exc:
            logger.error("%s", exc)
            outcome = str(exc)
            return EXIT_TOKEN_REFUSED
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            await self._shutdown()
            self._set_status("stopped", outcome)
        return EXIT_OK

    # ------------------------------------------------------------ connection

    def _greet(self) -> None:
        """On a new connection: ``v1.ready``, then what the service may have missed."""
        ready = self._ready()
        self._send(directives.encode(ready))
        replayed = self._replay.replay(self._send)
        requests = 0
        for frame in self._calls.unanswered():
            self._send(frame)
            requests += 1
        if self._draining:
            self._send(self._pulse(None))
        self._set_status("connected", self.settings.url)
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

    def _on_retry(self, reason: str) -> None:
        """A connect failed or the connection was lost; the connection tries again."""
        self._set_status("reconnecting", reason)

    # ---------------------------------------------------------------- status

    def _set_status(self, state: probing.State, detail: str) -> None:
        """Record the state in the status file, if the worker keeps one; a draining worker stays draining."""
        if self._status is not None:
            self._status.set("draining" if self._draining and state != "stopped" else state, detail)

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
            job.cancel(jobs.SUPERSEDED)
            del self._jobs[run_id]
        finished = self._replay.held.get(run_id)
        if finished is not None and finished >= attempt:
            logger.debug("run %s attempt %d already finished here; ignoring a repeat", run_id, attempt)
            return
        if self._draining:
            self._hold(run_id, attempt, self._reporter.released(run_id, attempt))
            return
        definition = self.definitions.get(start.routine_id)
        if definition is None:
            self._hold(run_id, attempt, self._reporter.not_found(start))
            return
        try:
            definition.check_params(start.params)
        except errors.InvalidParamsError as exc:
            self._hold(run_id, attempt, self._reporter.invalid_params(start, exc))
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
        job.start()
        # Reported when the writer next writes; a run that ends first reports its start in its final report.
        self._connection.defer((job.id, job.attempt), functools.partial(self._report_start, job))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s attempt %d of %s started", job.id, job.attempt, job.task.routine.id)
        assert self._executor is not None
        try:
            await job.run(self._executor)
        finally:
            self._finish(job)

    def _report_start(self, job: jobs.Job) -> None:
        assert job.started is not None
        frame = directives.encode(
            directives.RoutineStarting(
                run_id=job.id, attempt=job.attempt, worker_id=self.worker_id, started_at=job.started
            )
        )
        self._replay.add(self._send(frame), job.id, job.attempt, frame, final=False)

    def _finish(self, job: jobs.Job) -> None:
        if job.thread is not None and not job.thread.done():
            self._abandoned.add(job.thread)
            job.thread.add_done_callback(self._abandoned.discard)
        reason = job.cancel_reason
        start_unsent = self._connection.forget((job.id, job.attempt))
        frame: str | None = None
        if reason != jobs.SUPERSEDED and reason != jobs.SHUTDOWN:
            # Before the job is gone: it may log for the run. A start not reported yet is reported in it.
            frame = self._reporter.final(job, started_at=job.started if start_unsent else None)
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]
            if self._draining and not self._jobs:
                self._idle.set()
        if frame is not None:
            self._replay.add(self._send(frame), job.id, job.attempt, frame, final=True)

    def _hold(self, run_id: directives.RunID, attempt: int, frame: str) -> None:
        """Send the final report of a run that did not run here, and keep it until confirmed."""
        self._replay.add(self._send(frame), run_id, attempt, frame, final=True)

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
        call = self._calls.open(
            parent.run_id,
            routine_id=routine_id,
            params=params,
            timeout_seconds=timeout_seconds,
            pool=pool,
            future=self.loop.create_future(),
        )
        self._send(call.frame)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("run %s requested sub-routine %s (request %s)", parent.run_id, routine_id, call.request_id)
        return call

    def forget_subroutine(self, call: contexts.SubroutineCall) -> None:
        cancel = self._calls.close(call)
        if cancel is not None:
            self._send(cancel)

    def send_log(self, run_id: directives.RunID, frame: str) -> None:
        if threading.get_ident() == self._loop_thread:
            self._send_log(run_id, frame)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is gone
                self.loop.call_soon_threadsafe(self._send_log, run_id, frame)

    def _send_log(self, run_id: directives.RunID, frame: str) -> None:
        if run_id not in self._jobs:
            logger.debug("dropping a log line of run %s, which is no longer running here", run_id)
        elif connecting.too_large(frame, limit=self.settings.max_message_size):
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
        self._set_status("draining", f"up to {self.settings.drain_timeout:g}s for {len(self._jobs)} running job(s)")
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
            await self._cancel_jobs(jobs.DRAINING)
        self._settled.clear()
        if self._connection.connected and self._replay.held:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.confirm_timeout):
                    await self._settled.wait()
            if self._replay.held:
                logger.warning(
                    "%d final report(s) not confirmed by the service; exiting anyway", len(self._replay.held)
                )
        logger.info("drained; stopping")
        self._connection.stop()  # the writer flushes and ends, which ends the connection

    async def _cancel_jobs(self, reason: str) -> None:
        running = list(self._jobs.values())
        for job in running:
            job.cancel(reason)
        runners = [job.runner for job in running if job.runner is not None and not job.runner.done()]
        if runners:
            _, late = await asyncio.wait(runners, timeout=_SHUTDOWN_GRACE)
            if late:
                logger.warning("%d job(s) did not stop when cancelled", len(late))

    async def _shutdown(self) -> None:
        self._connection.stop()
        for task in (self._drainer, self._refresher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._jobs:
            await self._cancel_jobs(jobs.SHUTDOWN)
        self._calls.cancel_all()
        abandoned = self.abandoned_threads
        if self._executor is not None:
            # Idle threads end at once; a thread still running a routine cannot be stopped.
            self._executor.shutdown(wait=not abandoned, cancel_futures=True)
        if abandoned:
            logger.warning(
                "%d plain 'def' routine(s) still run in threads after being cancelled or timing out", abandoned
            )


def new_event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when uvloop is installed (``workpath[speed]``), else None (asyncio's)."""
    try:
        import uvloop  # optional: workpath[speed]
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_worker(settings: settings.WorkerSettings, definitions: Iterable[routines.RoutineDefinition[..., Any]]) -> int:
    """Run a worker in this process until it is drained (SIGTERM/SIGINT); return the exit code.

    Its runs' ``ctx.log`` lines are printed to stdout as JSON lines (for a cluster's log collection).
    """
    contexts.print_run_lines(sys.stdout)
    worker = Worker(settings, definitions)
    with asyncio.Runner(loop_factory=new_event_loop_factory()) as runner:
        code = runner.run(worker.run(handle_signals=True))
    if worker.abandoned_threads:
        # Threads cannot be killed, and the interpreter would wait for them at exit.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
