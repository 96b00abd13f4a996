"""The dispatcher: the state machine of runs, from queued to finished.

It knows nothing of Kubernetes or of sockets: runs come in through :meth:`Dispatcher.submit`
(or :meth:`Dispatcher.restore` after a restart), workers through its roster, and every
change of a run is reported to the run store, which persists it its own way.

A run is queued, assigned to a worker with a free slot (an attempt), started, and
finished: succeeded, failed, or cancelled. A failed attempt may be retried after a
delay, a lost or released one is queued again, and timers bound how long a run waits
for a worker and how long an attempt runs. The dispatcher is made of parts with one
job each: :mod:`~.matching` finds workers for runs, :mod:`~.retrying` says when to try
again, :mod:`~.rostering` keeps the workers, :mod:`~.delegating` keeps the sub-routine
tree. The parts call back through the public methods below the report handlers.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from workpath import directives
from workpath_operator.service import (
    delegating,
    fleets,
    limiting,
    matching,
    measures,
    retrying,
    rostering,
    runs,
    sessions,
    settings,
)

logger = logging.getLogger("workpath.dispatcher")

Phase = runs.Phase
Reason = runs.Reason


class Dispatcher:
    """Runs not finished, their attempts and timers; see the module's docstring."""

    def __init__(self, *, settings: settings.ServiceSettings, observer: runs.RunObserver) -> None:
        self.settings = settings
        self.observer = observer
        self._loop = asyncio.get_running_loop()
        self.matcher: matching.Matcher[sessions.WorkerSession] = matching.Matcher()
        self.policy = retrying.RetryPolicy(cancel_grace=settings.cancel_grace)
        self.roster = rostering.Roster(self, matcher=self.matcher, settings=settings, loop=self._loop)
        #: How often each limit on what one caller can cost was hit.
        self.breaches = limiting.Breaches()
        self.subroutines = delegating.SubroutineTree(
            self,
            max_open=settings.max_open_subroutines,
            max_params_bytes=settings.max_params_bytes,
            breaches=self.breaches,
        )
        self._log_gate = limiting.LogGate(
            max_line_bytes=settings.max_log_line_bytes,
            lines_per_second=settings.log_lines_per_second,
            burst=settings.log_burst,
            breaches=self.breaches,
        )
        self._sessions = self.roster.sessions
        #: What the WorkerPool autoscaler sees of the service: each pool's demand and workers; cordoning.
        self.pools = fleets.PoolFleet(self)
        self._runs: dict[directives.RunID, runs.Run] = {}
        self._finished: collections.OrderedDict[directives.RunID, runs.Run] = collections.OrderedDict()
        #: Workers connected or within their reconnect grace, by worker ID.
        self.sessions: Mapping[directives.WorkerID, sessions.WorkerSession] = self._sessions
        #: Runs not finished, by run ID.
        self.runs: Mapping[directives.RunID, runs.Run] = self._runs
        #: Recently finished runs, oldest first, to answer repeated or late reports.
        self.finished: Mapping[directives.RunID, runs.Run] = self._finished
        #: Queued -> dispatched, started -> completed and runs finished, counted for ``/metrics``.
        self.measures = measures.RunMeasures()
        self._waiters: dict[directives.RunID, list[asyncio.Future[runs.Run]]] = {}

    # ------------------------------------------------------------------ runs in

    def submit(
        self,
        spec: runs.RunSpec,
        *,
        key: str | None = None,
        run_id: directives.RunID | None = None,
        created_at: datetime.datetime | None = None,
    ) -> runs.Run:
        """Accept a new run and queue it; it is dispatched at once if a worker is idle."""
        run = runs.Run(
            run_id=run_id or runs.new_run_id(),
            spec=spec,
            created_at=created_at or directives.now(),
            key=key,
        )
        self._runs[run.run_id] = run
        self.observer.run_changed(run)
        self.enqueue(run)
        return run

    def restore(self, known: Iterable[runs.Run]) -> None:
        """Take back the runs known before a restart, as the run store rebuilt them.

        A run that was on a worker is held for that worker for the reconnect grace period; the worker keeps it
        if it reconnects and lists it in ``v1.ready``. Pending runs are queued again; children are linked to
        their parents, finished ones too, so that their results reach the parent's worker and a replayed
        request does not start them again.
        """
        known = list(known)
        active: list[runs.Run] = []
        for run in known:
            if run.phase.finished:
                self._remember_finished(run)
            else:
                self._runs[run.run_id] = run
                active.append(run)
        self.subroutines.link(known)
        if active:
            awaited = {run.worker for run in active if run.worker is not None}
            self.roster.settle(awaited, recovering=len(active))
        for run in active:
            if run.worker is None:
                self.enqueue(run)
            else:
                self.roster.keep(run)

    def get(self, run_id: directives.RunID) -> runs.Run | None:
        return self._runs.get(run_id) or self._finished.get(run_id)

    def wait_finished(self, run: runs.Run) -> asyncio.Future[runs.Run]:
        """A future that resolves with the run once it is finished."""
        future: asyncio.Future[runs.Run] = self._loop.create_future()
        if run.phase.finished:
            future.set_result(run)
        else:
            self._waiters.setdefault(run.run_id, []).append(future)
        return future

    def cancel(self, run_id: directives.RunID, *, reason: str) -> bool:
        """Cancel a run and its sub-routines; False if it is unknown or already finished."""
        run = self._runs.get(run_id)
        if run is None:
            return False
        self.cancel_run(run, reason)
        return True

    def log(self, run: runs.Run, entry: directives.Log, *, size: int) -> None:
        """A log line of ``run`` (a frame of ``size`` bytes): kept within the run's limits, then stored."""
        for kept in self._log_gate.admit(run, entry, size=size):
            self.observer.run_log(run, kept)

    def lose_worker(self, worker_id: str, *, reason: str) -> bool:
        """The worker's process is gone (its pod was deleted, its container terminated, its local process
        exited): re-queue its runs now, with ``reason``, rather than after its reconnect grace period.

        A worker still connected is lost the moment that connection closes, if it does soon (a process that died
        has its connection closed by its kernel; a new process reconnecting with that worker ID keeps its
        runs). True if its runs were re-queued now.
        """
        return self.roster.gone(directives.WorkerID(worker_id), reason=reason)

    # ------------------------------------------------------------ transitions

    def start(self, run: runs.Run, session: sessions.WorkerSession, *, started_at: datetime.datetime) -> None:
        """The worker started the attempt it holds (a repeated start changes nothing)."""
        if run.phase is Phase.RUNNING:
            return
        run.phase = Phase.RUNNING
        run.started_at = started_at
        run.reason = Reason.STARTED
        run.message = ""
        self.observer.run_changed(run)
        if run.parent_run_id is not None:
            self.subroutines.started(run, session, started_at=started_at)

    # ------------------------------------------- for the roster and the sub-routine tree

    def admit(self, run: runs.Run) -> None:
        """Track a run made elsewhere (a sub-routine) as not finished; :meth:`enqueue` queues it."""
        self._runs[run.run_id] = run

    def enqueue(self, run: runs.Run) -> None:
        """Give the run to an idle worker that can take it, or queue it (unless the service is settling)."""
        run.queued_at = time.perf_counter()
        if not self.roster.settling:
            session = self.matcher.idle_worker(run)
            if session is not None:
                self._assign(run, session)
                return
        self.matcher.queue(run)
        if run.demand_pool is None and not self.matcher.capable(run):
            self.mark_unservable(run)
        timeout = self.policy.queue_timeout(run.spec)
        if timeout is not None:
            self._arm(run, timeout, self._queue_timeout, run.seq)

    def fill(self, session: sessions.WorkerSession) -> None:
        """Give a worker queued runs while it has free slots."""
        if self.roster.settling:
            return
        matcher = self.matcher
        while session.accepting:
            run = matcher.next_run(session)
            if run is None:
                return
            self._assign(run, session)

    def occupy(self, run: runs.Run, session: sessions.WorkerSession) -> None:
        """The run takes one of its worker's slots (once)."""
        if run.holds_slot:
            return
        run.holds_slot = True
        session.occupy()
        if session.full:
            self.matcher.mark_unavailable(session)

    def vacate(self, run: runs.Run, session: sessions.WorkerSession) -> None:
        """The run gives its slot back (finished, or lending it to its children): the worker may take more."""
        if not run.holds_slot:
            return
        run.holds_slot = False
        session.vacate()
        if session.accepting:
            self.matcher.mark_available(session)
            self.fill(session)
        # A pool's load fell: its autoscaler starts counting down to a smaller size (a no-op without pools).
        self.matcher.demand.workers_changed(session.pool)

    def adopt(self, run: runs.Run, session: sessions.WorkerSession, attempt: int) -> None:
        """A reconnected worker holds an attempt the service never recorded: it keeps it."""
        self.matcher.withdraw(run)
        self._disarm(run)
        run.attempt = attempt
        run.worker = session.worker_id
        run.phase = Phase.RUNNING
        run.started_at = run.started_at or directives.now()
        run.reason = Reason.ADOPTED
        run.message = f"worker {session.worker_id} still held attempt {attempt}"
        session.hold(run)
        if run.waiting == 0:
            self.occupy(run, session)
        self.observer.run_changed(run)
        logger.info("run %s: worker %s still holds attempt %d; it keeps it", run.run_id, session.worker_id, attempt)

    def requeue(self, run: runs.Run, reason: Reason, message: str) -> None:
        """Take a run off its worker and queue it again as a new attempt."""
        self._release(run)
        self._reset_attempt(run, reason, message)
        self.observer.run_changed(run)
        logger.info("run %s (%s) re-queued: %s", run.run_id, run.routine_id, message)
        self.enqueue(run)

    def cancel_run(self, run: runs.Run, reason: str) -> None:
        """Cancel a run not finished (its worker is told) and its children."""
        if run.worker is not None:
            session = self._sessions.get(run.worker)
            if session is not None and run.run_id in session.runs:
                session.send(directives.encode(directives.CancelRoutine(run_id=run.run_id, reason=reason)))
        self.finish(
            run,
            Phase.CANCELLED,
            error=directives.ErrorInfo(type=directives.ErrorType.CANCELLED, message=reason, retryable=False),
        )

    # -------------------------------------------------------------- internals

    def _assign(self, run: runs.Run, session: sessions.WorkerSession) -> None:
        if run.queued:
            self.matcher.withdraw(run)
        run.attempt += 1
        run.worker = session.worker_id
        run.reason = Reason.DISPATCHED
        run.holds_slot = True  # a run being assigned holds no slot: it is new, or was released
        self.matcher.assigned(session, full=session.take(run))
        deadline = None
        if run.spec.timeout_seconds is not None:
            deadline = self.policy.deadline(run.spec, now=directives.now())
            self._arm(run, self.policy.attempt_timeout(run.spec), self._attempt_timeout, run.attempt)
        elif run.timer is not None:
            self._disarm(run)
        session.send(
            directives.encode(
                directives.StartRoutine(
                    run_id=run.run_id,
                    routine_id=run.spec.routine_id,
                    params=run.spec.params,
                    attempt=run.attempt,
                    parent_run_id=run.parent_run_id,
                    deadline=deadline,
                )
            )
        )
        self.measures.dispatch_latency.observe(time.perf_counter() - run.queued_at)
        self.observer.run_changed(run)

    def _release(self, run: runs.Run) -> None:
        """Take a run off its worker."""
        if run.timer is not None:
            self._disarm(run)
        if run.worker is None:
            return
        session = self._sessions.get(run.worker)
        if session is not None and session.drop(run.run_id) is not None:
            self.vacate(run, session)
        run.holds_slot = False

    def finish(
        self,
        run: runs.Run,
        phase: Phase,
        *,
        result: Any = None,
        error: directives.ErrorInfo | None = None,
        completed_at: datetime.datetime | None = None,
    ) -> None:
        """The run is over: off its worker and its queue, its children cancelled, its waiters told."""
        was_running = run.phase is Phase.RUNNING
        if run.queued:
            self.matcher.withdraw(run)
        self._release(run)
        run.phase = phase
        run.completed_at = completed_at or directives.now()
        run.result = result
        run.error = error
        run.reason = Reason.finished_in(phase)
        run.message = error.message if error is not None else ""
        self.measures.run_finished(run)
        if run.children:
            self.subroutines.cancel_children(run, f"parent run {run.run_id} finished ({phase})")
        self._runs.pop(run.run_id, None)
        self._remember_finished(run)
        self.observer.run_changed(run)
        if run.parent_run_id is not None:
            self.subroutines.finished(run, was_running=was_running)
        waiters = self._waiters.pop(run.run_id, None) if self._waiters else None
        if waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(run)

    def fail(self, run: runs.Run, error: directives.ErrorInfo, *, completed_at: datetime.datetime | None) -> None:
        """The attempt failed: try again after the policy's delay, or fail the run."""
        run.failures += 1
        retries = run.spec.retries
        delay = self.policy.retry_delay(retries, error, failures=run.failures)
        if delay is None:
            self.finish(run, Phase.FAILED, error=error, completed_at=completed_at)
            return
        self._release(run)
        self._reset_attempt(
            run,
            Reason.RETRYING,
            f"attempt {run.attempt} failed ({error.type}: {error.message}); "
            f"retry {run.failures} of {retries.limit} in {delay:g}s",
        )
        run.error = error
        self.observer.run_changed(run)
        self._arm(run, delay, self._retry, run.attempt)

    def _retry(self, run: runs.Run, attempt: int) -> None:
        run.timer = None
        if run.attempt == attempt and not run.phase.finished and run.worker is None and not run.queued:
            self.enqueue(run)

    def _reset_attempt(self, run: runs.Run, reason: Reason, message: str) -> None:
        self.subroutines.abandon(run)
        run.phase = Phase.PENDING
        run.worker = None
        run.started_at = None
        run.reason = reason
        run.message = message

    def _queue_timeout(self, run: runs.Run, seq: int) -> None:
        run.timer = None
        if not run.queued or run.seq != seq:
            return
        capable = self.matcher.capable(run)
        pool = f" in pool {run.spec.pool!r}" if run.spec.pool else ""
        self.finish(
            run,
            Phase.FAILED,
            error=directives.ErrorInfo(
                type=directives.ErrorType.QUEUE_TIMEOUT,
                message=f"no worker took {run.routine_id} within {run.spec.timeout_seconds:g}s "
                f"({capable} connected worker(s) can run it{pool})",
                retryable=False,
            ),
        )

    def _attempt_timeout(self, run: runs.Run, attempt: int) -> None:
        run.timer = None
        if run.attempt != attempt or run.phase.finished or run.worker is None:
            return
        session = self._sessions.get(run.worker)
        if session is not None:
            session.send(directives.encode(directives.CancelRoutine(run_id=run.run_id, reason="deadline exceeded")))
        self.fail(
            run,
            directives.ErrorInfo(
                type=directives.ErrorType.TIMEOUT,
                message=f"attempt {attempt} ran past its {run.spec.timeout_seconds:g}s deadline",
                retryable=True,
            ),
            completed_at=None,
        )

    def _arm(self, run: runs.Run, delay: float, callback: Callable[[runs.Run, int], None], token: int) -> None:
        if run.timer is not None:
            run.timer.cancel()
        run.timer = self._loop.call_later(delay, callback, run, token)

    def _disarm(self, run: runs.Run) -> None:
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None

    def _remember_finished(self, run: runs.Run) -> None:
        finished = self._finished
        finished[run.run_id] = run
        if len(finished) > self.settings.finished_runs_kept:
            finished.popitem(last=False)

    def mark_unservable(self, run: runs.Run) -> None:
        """Say why a queued run waits: no connected worker can run it, and no declared pool serves it."""
        where = f" in pool {run.spec.pool!r}" if run.spec.pool else ""
        message = f"no connected worker can run {run.routine_id}{where}, and no WorkerPool serves it"
        if run.reason is Reason.WORKER_LOST:
            run.message = f"{run.message}; {message}"  # why it is queued again matters more
        else:
            run.reason = Reason.NO_WORKER
            run.message = message
        self.observer.run_changed(run)

    # ------------------------------------------------------------------ views

    def queue_depth(self) -> int:
        return len(self.matcher.queued)

    def workers(self) -> Iterable[sessions.WorkerSession]:
        return self._sessions.values()
