"""The dispatcher: matches queued runs to workers with a free slot, and keeps runs' state.

It knows nothing of Kubernetes or of sockets: runs come in through :meth:`submit`
(or :meth:`restore` after a restart), workers through :meth:`attach`, and every
change of a run is reported to the run store, which persists it its own way.

Matching is cheap on the hot path. Workers with the same pool and the same
routine patterns form a :class:`Group`; each group has a heap of the queued runs
it can take (priority, then FIFO) and an ordered set of its workers with a free
slot. A new run goes straight to an idle worker of an eligible group, or onto
those groups' heaps; a freed slot pops its group's heap. Which groups may run a
routine ID is computed once per (pool, routine ID) and cached. A run queued in
several groups' heaps is taken by the first and skipped by the others (lazy
deletion), so no operation scans all runs or all workers.

Sub-routines do not deadlock the pool: while a run waits on unfinished children
it lends its slot to them (the worker's ``busy`` count drops), so even a worker
with one slot runs a chain of parent -> child -> grandchild. When the children
finish, the parent takes its slot back, even if that puts the worker briefly
over its slot count; the dispatcher then gives it nothing new until it is below.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import fnmatch
import heapq
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol

from workpath import directives, errors
from workpath_operator.service import runs, sessions, settings

logger = logging.getLogger("workpath.dispatcher")

Phase = runs.Phase


class RunObserver(Protocol):
    """Told of every change of a run (the run store)."""

    def run_changed(self, run: runs.Run) -> None: ...

    def run_log(self, run: runs.Run, entry: directives.Log) -> None: ...


class Group:
    """Workers that can run the same routines: one pool, one set of routine patterns."""

    __slots__ = ("heap", "idle", "key", "patterns", "pool", "size")

    def __init__(self, pool: str, patterns: frozenset[str]) -> None:
        self.key = (pool, patterns)
        self.pool = pool
        self.patterns = patterns
        self.heap: list[tuple[int, int, runs.Run]] = []
        #: Workers of this group with a free slot, in round-robin order (an ordered set).
        self.idle: dict[sessions.WorkerSession, None] = {}
        self.size = 0

    def accepts(self, pool: str | None, routine_id: str) -> bool:
        if pool is not None and pool != self.pool:
            return False
        return any(fnmatch.fnmatchcase(routine_id, pattern) for pattern in self.patterns)


class Dispatcher:
    def __init__(self, *, config: settings.ServiceSettings, observer: RunObserver) -> None:
        self.config = config
        self.observer = observer
        self.sessions: dict[directives.WorkerID, sessions.WorkerSession] = {}
        #: Runs not finished, by run ID.
        self.runs: dict[directives.RunID, runs.Run] = {}
        #: Seconds from queued to dispatched, for the latest dispatches.
        self.dispatch_latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        #: Recently finished runs, oldest first, to answer repeated or late reports.
        self.finished: collections.OrderedDict[directives.RunID, runs.Run] = collections.OrderedDict()
        #: Queued runs, in arrival order (for new groups, and the queue depth).
        self.queued: dict[directives.RunID, runs.Run] = {}
        self._groups: dict[tuple[str, frozenset[str]], Group] = {}
        self._eligible: dict[tuple[str | None, str], tuple[Group, ...]] = {}
        self._seq = 0
        #: Workers awaited after a restart; nothing is dispatched while this is set.
        self._settling: set[directives.WorkerID] | None = None
        self._waiters: dict[directives.RunID, list[asyncio.Future[runs.Run]]] = {}
        self._loop = asyncio.get_running_loop()

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
        self.runs[run.run_id] = run
        self.observer.run_changed(run)
        self._enqueue(run)
        return run

    def restore(self, known: Iterable[runs.Run]) -> None:
        """Take back the runs known before a restart, as the run store rebuilt them.

        A run that was on a worker is held for that worker for the reconnect grace
        period; the worker keeps it if it reconnects and lists it in ``v1.ready``.
        Pending runs are queued again; children are linked to their parents, finished ones too, so that
        their results reach the parent's worker and a replayed request does not start them again.
        """
        known = list(known)
        active: list[runs.Run] = []
        for run in known:
            if run.phase.finished:
                self._remember_finished(run)
            else:
                self.runs[run.run_id] = run
                active.append(run)
        for run in known:
            parent = self.runs.get(run.parent_run_id) if run.parent_run_id else None
            if parent is not None and run.request_id is not None and run.parent_attempt == parent.attempt:
                if parent.children is None:
                    parent.children = {}
                parent.children[run.request_id] = run
                if not run.phase.finished:
                    parent.waiting += 1
        awaited = {run.worker for run in active if run.worker is not None}
        if active and self.config.settle_seconds > 0:
            self._settling = awaited
            self._loop.call_later(self.config.settle_seconds, self._settled)
            logger.info(
                "recovering %d run(s); waiting up to %gs for %d worker(s) to reconnect before dispatching",
                len(active),
                self.config.settle_seconds,
                len(awaited),
            )
        for run in active:
            if run.worker is None:
                self._enqueue(run)
                continue
            session = self.sessions.get(run.worker)
            if session is None:
                session = self.sessions[run.worker] = sessions.WorkerSession(run.worker)
                self._start_grace(session)
            session.runs[run.run_id] = run
            if run.waiting == 0:
                run.holds_slot = True
                session.busy += 1

    def get(self, run_id: directives.RunID) -> runs.Run | None:
        return self.runs.get(run_id) or self.finished.get(run_id)

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
        run = self.runs.get(run_id)
        if run is None:
            return False
        self._cancel(run, reason)
        return True

    # --------------------------------------------------------------- workers in

    def attach(self, ws: Any, ready: directives.Ready) -> sessions.WorkerSession:
        """A worker said ``v1.ready`` on a new connection: (re)join its session and reconcile runs."""
        session = self.sessions.get(ready.worker_id)
        if session is None:
            session = self.sessions[ready.worker_id] = sessions.WorkerSession(ready.worker_id)
        elif session.ws is not None:
            logger.info("worker %s connected again; the new connection replaces the old", ready.worker_id)
        if session.grace_timer is not None:
            session.grace_timer.cancel()
            session.grace_timer = None
        self._leave_group(session)
        session.pool = ready.pool
        session.patterns = frozenset(ready.routines)
        session.slots = ready.slots
        session.draining = False
        session.connect(ws)

        held = {h.run_id: h.attempt for h in ready.running}
        session.disowned = set()
        for run in list(session.runs.values()):
            if held.get(run.run_id) != run.attempt:
                self._requeue(run, "Requeued", f"worker {session.worker_id} reconnected without it")
        for run_id, attempt in held.items():
            if run_id in session.runs:
                continue
            known = self.runs.get(run_id)
            if known is not None and known.worker is None and attempt > known.attempt:
                # A newer attempt than the service recorded (it restarted before writing the dispatch down):
                # the worker keeps it rather than the run starting twice.
                self._adopt(known, session, attempt)
            elif known is not None or run_id not in self.finished:
                # Given to another worker meanwhile (its reports will be refused as stale), or unknown here (its
                # Routine is gone: its reports are expected and ignored): stop this copy.
                if known is None:
                    session.disowned.add(run_id)
                session.send(directives.encode(directives.CancelRoutine(run_id=run_id, reason="run is not yours")))
        for run in session.runs.values():
            if run.children:
                for child in run.children.values():
                    if child.phase.finished and child.parent_attempt == run.attempt:
                        session.send(_final_frame(child))
        self._join_group(session)
        if self._settling is not None:
            self._settling.discard(session.worker_id)
            if not self._settling:
                self._loop.call_soon(self._settled)
        logger.info(
            "worker %s ready: pool=%s slots=%d routines=%s, holding %d run(s)",
            session.worker_id,
            session.pool,
            session.slots,
            ",".join(sorted(session.patterns)),
            len(session.runs),
        )
        self._fill(session)
        return session

    def _settled(self) -> None:
        if self._settling is None:
            return
        self._settling = None
        for session in list(self.sessions.values()):
            self._fill(session)

    def _adopt(self, run: runs.Run, session: sessions.WorkerSession, attempt: int) -> None:
        if run.queued:
            run.queued = False
            del self.queued[run.run_id]
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        run.attempt = attempt
        run.worker = session.worker_id
        run.phase = Phase.RUNNING
        run.started_at = run.started_at or directives.now()
        run.reason = "Adopted"
        run.message = f"worker {session.worker_id} still held attempt {attempt}"
        session.runs[run.run_id] = run
        if run.waiting == 0:
            run.holds_slot = True
            session.busy += 1
        self.observer.run_changed(run)
        logger.info("run %s: worker %s still holds attempt %d; it keeps it", run.run_id, session.worker_id, attempt)

    def detach(self, session: sessions.WorkerSession, ws: Any) -> None:
        """The connection ``ws`` closed; the worker keeps its runs for the grace period."""
        if session.ws is not ws:
            return  # a newer connection already replaced it
        session.disconnect()
        if session.group is not None:
            session.group.idle.pop(session, None)
        logger.info(
            "worker %s disconnected; holding its %d run(s) for %.1fs",
            session.worker_id,
            len(session.runs),
            self.config.reconnect_grace,
        )
        self._start_grace(session)

    def lose(self, session: sessions.WorkerSession, reason: str) -> None:
        """The worker is gone for good (unresponsive, or past its grace): re-queue its runs."""
        if session.grace_timer is not None:
            session.grace_timer.cancel()
            session.grace_timer = None
        session.disconnect()
        self._leave_group(session)
        if self.sessions.get(session.worker_id) is session:
            del self.sessions[session.worker_id]
        for run in list(session.runs.values()):
            self._requeue(run, "WorkerLost", f"worker {session.worker_id} {reason}")
        logger.warning("worker %s %s", session.worker_id, reason)

    def set_status(self, session: sessions.WorkerSession, status: directives.WorkerStatus) -> None:
        draining = status == "draining"
        if draining == session.draining:
            return
        session.draining = draining
        if draining:
            if session.group is not None:
                session.group.idle.pop(session, None)
            logger.info("worker %s is draining", session.worker_id)
        else:
            self._fill(session)

    # ----------------------------------------------------- directives of a worker

    def starting(self, session: sessions.WorkerSession, report: directives.RoutineStarting) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is None:
            return
        if run.phase is Phase.RUNNING:
            return
        run.phase = Phase.RUNNING
        run.started_at = report.started_at
        run.reason = "Started"
        run.message = ""
        self.observer.run_changed(run)
        if run.parent_run_id is not None:
            parent = self.runs.get(run.parent_run_id)
            if parent is not None:
                parent.children_running += 1
                self.observer.run_changed(parent)
            self._forward(
                run,
                directives.RoutineStarting(
                    run_id=run.run_id,
                    attempt=run.attempt,
                    request_id=run.request_id,
                    worker_id=session.worker_id,
                    started_at=report.started_at,
                ),
            )

    def completed(self, session: sessions.WorkerSession, report: directives.RoutineCompleted, *, size: int) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is None:
            return
        if run.started_at is None:
            run.started_at = report.completed_at
        if size > self.config.max_result_bytes:
            self._finish(
                run,
                Phase.FAILED,
                error=directives.ErrorInfo(
                    type=directives.ErrorType.RESULT_TOO_LARGE,
                    message=f"the result of {run.routine_id} is {size} bytes; the limit is "
                    f"{self.config.max_result_bytes} (WORKPATH_MAX_RESULT_BYTES): store large data "
                    f"elsewhere and return a reference",
                    retryable=False,
                ),
                completed_at=report.completed_at,
            )
            raise errors.DirectiveError(
                directives.ErrorCode.RESULT_TOO_LARGE,
                f"result of run {run.run_id} is {size} bytes, over {self.config.max_result_bytes}",
                in_reply_to=report.KEY,
            )
        self._finish(run, Phase.SUCCEEDED, result=report.result, completed_at=report.completed_at)

    def failed(self, session: sessions.WorkerSession, report: directives.RoutineFailed) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is None:
            return
        if run.started_at is None:
            run.started_at = report.completed_at
        self._fail(run, report.error, completed_at=report.completed_at)

    def released(self, session: sessions.WorkerSession, report: directives.Released) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is None:
            return
        self._requeue(run, "Released", f"worker {session.worker_id} handed it back: {report.reason}")

    def request(self, session: sessions.WorkerSession, request: directives.RequestSubroutine) -> None:
        """A running routine asks for a sub-routine."""
        parent = session.runs.get(request.parent_run_id)
        if parent is None:
            raise errors.DirectiveError(
                directives.ErrorCode.UNKNOWN_RUN,
                f"run {request.parent_run_id} is not held by worker {session.worker_id}; "
                f"it cannot request sub-routines",
                in_reply_to=request.KEY,
            )
        if parent.children is None:
            parent.children = {}
        elif request.request_id in parent.children:
            child = parent.children[request.request_id]
            if child.phase.finished:
                session.send(_final_frame(child))
            return  # a replay after a reconnect: the child exists already
        spec = runs.RunSpec(
            routine_id=request.routine_id,
            params=request.params,
            pool=request.pool,
            priority=parent.spec.priority,
            timeout_seconds=request.timeout_seconds,
        )
        child = runs.Run(
            run_id=runs.new_run_id(),
            spec=spec,
            created_at=directives.now(),
            parent_run_id=parent.run_id,
            root_run_id=parent.root_run_id or parent.run_id,
            request_id=request.request_id,
            parent_attempt=parent.attempt,
        )
        parent.children[request.request_id] = child
        parent.children_total += 1
        parent.waiting += 1
        self.runs[child.run_id] = child
        self.observer.run_changed(parent)
        self.observer.run_changed(child)
        if parent.waiting == 1:
            self._vacate(parent, session)
        self._enqueue(child)

    def cancel_request(self, session: sessions.WorkerSession, cancel: directives.CancelSubroutine) -> None:
        """A routine stopped waiting for a sub-routine: cancel the child, if it still runs."""
        parent = session.runs.get(cancel.parent_run_id)
        child = parent.children.get(cancel.request_id) if parent is not None and parent.children else None
        if child is not None and not child.phase.finished:
            self._cancel(child, cancel.reason)

    def log(self, session: sessions.WorkerSession, entry: directives.Log) -> None:
        run = session.runs.get(entry.run_id)
        if run is None:
            raise errors.DirectiveError(
                directives.ErrorCode.UNKNOWN_RUN,
                f"run {entry.run_id} is not held by worker {session.worker_id}",
                in_reply_to=entry.KEY,
            )
        self.observer.run_log(run, entry)

    # ------------------------------------------------------------------ internal

    def _held(
        self, session: sessions.WorkerSession, run_id: directives.RunID, attempt: int, key: str
    ) -> runs.Run | None:
        """The run a report is about, or None for a harmless repeat; raise for a stale report."""
        run = session.runs.get(run_id)
        if run is not None and run.attempt == attempt:
            return run
        if run_id in session.disowned:
            return None  # the worker was told to drop it; its last reports of it change nothing
        known = self.runs.get(run_id) or self.finished.get(run_id)
        if known is None:
            raise errors.DirectiveError(
                directives.ErrorCode.UNKNOWN_RUN, f"run {run_id} is not known to the service", in_reply_to=key
            )
        if known.phase.finished and known.attempt == attempt and known.worker == session.worker_id:
            return None  # already finished by this very attempt: a replay or a late report
        raise errors.DirectiveError(
            directives.ErrorCode.STALE_ATTEMPT,
            f"attempt {attempt} of run {run_id} is not held by worker {session.worker_id} "
            f"(current attempt {known.attempt} on {known.worker or 'no worker'}, {known.phase}); "
            f"the report is ignored",
            in_reply_to=key,
        )

    def _eligible_groups(self, run: runs.Run) -> tuple[Group, ...]:
        cache_key = (run.spec.pool, run.spec.routine_id)
        groups = self._eligible.get(cache_key)
        if groups is None:
            groups = tuple(g for g in self._groups.values() if g.accepts(run.spec.pool, run.spec.routine_id))
            self._eligible[cache_key] = groups
        return groups

    def _enqueue(self, run: runs.Run) -> None:
        run.queued_at = time.perf_counter()
        groups = self._eligible_groups(run)
        if self._settling is None:
            for group in groups:
                if group.idle:
                    self._assign(run, next(iter(group.idle)))
                    return
        self._seq += 1
        run.seq = self._seq
        run.queued = True
        self.queued[run.run_id] = run
        entry = (-run.spec.priority, run.seq, run)
        for group in groups:
            heapq.heappush(group.heap, entry)
        if run.spec.timeout_seconds is not None:
            self._arm(run, run.spec.timeout_seconds, self._queue_timeout, run.seq)

    def _fill(self, session: sessions.WorkerSession) -> None:
        """Give a worker queued runs while it has free slots."""
        group = session.group
        if group is None or self._settling is not None:
            return
        heap = group.heap
        while heap and session.accepting:
            _, seq, run = heapq.heappop(heap)
            if run.queued and run.seq == seq:
                self._assign(run, session)

    def _assign(self, run: runs.Run, session: sessions.WorkerSession) -> None:
        if run.queued:
            run.queued = False
            del self.queued[run.run_id]
        run.attempt += 1
        run.worker = session.worker_id
        run.reason = "Dispatched"
        session.runs[run.run_id] = run
        self._occupy(run, session)
        group = session.group
        if group is not None and len(group.idle) > 1 and session in group.idle:
            del group.idle[session]  # round robin between idle workers
            group.idle[session] = None
        deadline = None
        timeout = run.spec.timeout_seconds
        if timeout is not None:
            deadline = directives.now() + datetime.timedelta(seconds=timeout)
            self._arm(run, timeout + self.config.cancel_grace, self._attempt_timeout, run.attempt)
        elif run.timer is not None:
            run.timer.cancel()
            run.timer = None
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
        self.dispatch_latencies.append(time.perf_counter() - run.queued_at)
        self.observer.run_changed(run)

    def _occupy(self, run: runs.Run, session: sessions.WorkerSession) -> None:
        if run.holds_slot:
            return
        run.holds_slot = True
        session.busy += 1
        if session.busy >= session.slots and session.group is not None:
            session.group.idle.pop(session, None)

    def _vacate(self, run: runs.Run, session: sessions.WorkerSession) -> None:
        if not run.holds_slot:
            return
        run.holds_slot = False
        session.busy -= 1
        if session.accepting and session.group is not None:
            session.group.idle[session] = None
            self._fill(session)

    def _release(self, run: runs.Run) -> None:
        """Take a run off its worker."""
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        if run.worker is None:
            return
        session = self.sessions.get(run.worker)
        if session is not None and session.runs.pop(run.run_id, None) is not None:
            self._vacate(run, session)
        run.holds_slot = False

    def _finish(
        self,
        run: runs.Run,
        phase: Phase,
        *,
        result: Any = None,
        error: directives.ErrorInfo | None = None,
        completed_at: datetime.datetime | None = None,
    ) -> None:
        was_running = run.phase is Phase.RUNNING
        if run.queued:
            run.queued = False
            del self.queued[run.run_id]
        self._release(run)
        run.phase = phase
        run.completed_at = completed_at or directives.now()
        run.result = result
        run.error = error
        run.reason = phase.value
        run.message = error.message if error is not None else ""
        if run.children:
            for child in run.children.values():
                if not child.phase.finished:
                    self._cancel(child, f"parent run {run.run_id} finished ({phase})")
        self.runs.pop(run.run_id, None)
        self._remember_finished(run)
        self.observer.run_changed(run)
        if run.parent_run_id is not None:
            self._child_finished(run, was_running)
        waiters = self._waiters.pop(run.run_id, None) if self._waiters else None
        if waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(run)

    def _child_finished(self, child: runs.Run, was_running: bool) -> None:
        parent = self.runs.get(child.parent_run_id) if child.parent_run_id else None
        if parent is None or child.parent_attempt != parent.attempt:
            return
        if child.phase is Phase.SUCCEEDED:
            parent.children_succeeded += 1
        else:
            parent.children_failed += 1
        if was_running:
            parent.children_running -= 1
        parent.waiting -= 1
        self.observer.run_changed(parent)
        session = self.sessions.get(parent.worker) if parent.worker else None
        if session is None:
            return
        session.send(_final_frame(child))
        if parent.waiting == 0 and parent.run_id in session.runs:
            self._occupy(parent, session)

    def _forward(self, child: runs.Run, payload: directives.Payload) -> None:
        parent = self.runs.get(child.parent_run_id) if child.parent_run_id else None
        if parent is None or parent.worker is None or child.parent_attempt != parent.attempt:
            return
        session = self.sessions.get(parent.worker)
        if session is not None:
            session.send(directives.encode(payload))

    def _fail(self, run: runs.Run, error: directives.ErrorInfo, *, completed_at: datetime.datetime | None) -> None:
        run.failures += 1
        limit = run.spec.retries.limit
        if not (error.retryable and run.failures <= limit):
            self._finish(run, Phase.FAILED, error=error, completed_at=completed_at)
            return
        delay = error.delay if error.delay is not None else run.spec.retries.backoff_seconds * (2 ** (run.failures - 1))
        self._release(run)
        self._reset_attempt(
            run,
            "Retrying",
            f"attempt {run.attempt} failed ({error.type}: {error.message}); "
            f"retry {run.failures} of {limit} in {delay:g}s",
        )
        run.error = error
        self.observer.run_changed(run)
        self._arm(run, delay, self._retry, run.attempt)

    def _retry(self, run: runs.Run, attempt: int) -> None:
        run.timer = None
        if run.attempt == attempt and not run.phase.finished and run.worker is None and not run.queued:
            self._enqueue(run)

    def _requeue(self, run: runs.Run, reason: str, message: str) -> None:
        """Take a run off its worker and queue it again as a new attempt."""
        self._release(run)
        self._reset_attempt(run, reason, message)
        self.observer.run_changed(run)
        logger.info("run %s (%s) re-queued: %s", run.run_id, run.routine_id, message)
        self._enqueue(run)

    def _reset_attempt(self, run: runs.Run, reason: str, message: str) -> None:
        if run.phase is Phase.RUNNING and run.parent_run_id is not None:
            parent = self.runs.get(run.parent_run_id)
            if parent is not None and run.parent_attempt == parent.attempt:
                parent.children_running -= 1
        if run.children:
            # The next attempt asks for its own sub-routines; these belong to the lost one.
            for child in run.children.values():
                if not child.phase.finished:
                    self._cancel(child, f"parent run {run.run_id} attempt {run.attempt} was abandoned")
            run.children = None
            run.waiting = 0
        run.phase = Phase.PENDING
        run.worker = None
        run.started_at = None
        run.reason = reason
        run.message = message

    def _cancel(self, run: runs.Run, reason: str) -> None:
        if run.worker is not None:
            session = self.sessions.get(run.worker)
            if session is not None and run.run_id in session.runs:
                session.send(directives.encode(directives.CancelRoutine(run_id=run.run_id, reason=reason)))
        self._finish(
            run,
            Phase.CANCELLED,
            error=directives.ErrorInfo(type=directives.ErrorType.CANCELLED, message=reason, retryable=False),
        )

    def _queue_timeout(self, run: runs.Run, seq: int) -> None:
        run.timer = None
        if not run.queued or run.seq != seq:
            return
        capable = sum(g.size for g in self._eligible_groups(run))
        self._finish(
            run,
            Phase.FAILED,
            error=directives.ErrorInfo(
                type=directives.ErrorType.QUEUE_TIMEOUT,
                message=f"no worker took {run.routine_id} within {run.spec.timeout_seconds:g}s "
                f"({capable} connected worker(s) can run it"
                + (f" in pool {run.spec.pool!r}" if run.spec.pool else "")
                + ")",
                retryable=False,
            ),
        )

    def _attempt_timeout(self, run: runs.Run, attempt: int) -> None:
        run.timer = None
        if run.attempt != attempt or run.phase.finished or run.worker is None:
            return
        session = self.sessions.get(run.worker)
        if session is not None:
            session.send(directives.encode(directives.CancelRoutine(run_id=run.run_id, reason="deadline exceeded")))
        self._fail(
            run,
            directives.ErrorInfo(
                type=directives.ErrorType.TIMEOUT,
                message=f"attempt {attempt} ran past its {run.spec.timeout_seconds:g}s deadline",
                retryable=True,
            ),
            completed_at=None,
        )

    def _arm(self, run: runs.Run, delay: float, callback: Any, token: int) -> None:
        if run.timer is not None:
            run.timer.cancel()
        run.timer = self._loop.call_later(delay, callback, run, token)

    def _remember_finished(self, run: runs.Run) -> None:
        finished = self.finished
        finished[run.run_id] = run
        if len(finished) > self.config.finished_runs_kept:
            finished.popitem(last=False)

    def _start_grace(self, session: sessions.WorkerSession) -> None:
        if session.grace_timer is not None:
            session.grace_timer.cancel()
        session.grace_timer = self._loop.call_later(self.config.reconnect_grace, self._grace_expired, session)

    def _grace_expired(self, session: sessions.WorkerSession) -> None:
        session.grace_timer = None
        if session.ws is None:
            self.lose(session, f"did not reconnect within {self.config.reconnect_grace:g}s")

    def _join_group(self, session: sessions.WorkerSession) -> None:
        key = (session.pool, session.patterns)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(session.pool, session.patterns)
            self._eligible.clear()
            # A new kind of worker: it may take runs queued before it came.
            entries = [
                (-run.spec.priority, run.seq, run)
                for run in self.queued.values()
                if group.accepts(run.spec.pool, run.spec.routine_id)
            ]
            heapq.heapify(entries)
            group.heap = entries
        group.size += 1
        session.group = group
        if session.accepting:
            group.idle[session] = None

    def _leave_group(self, session: sessions.WorkerSession) -> None:
        group = session.group
        if group is None:
            return
        group.idle.pop(session, None)
        group.size -= 1
        session.group = None
        if group.size == 0 and not group.heap:
            del self._groups[group.key]
            self._eligible.clear()

    # ------------------------------------------------------------------ views

    def queue_depth(self) -> int:
        return len(self.queued)

    def workers(self) -> Iterable[sessions.WorkerSession]:
        return self.sessions.values()


def _final_frame(child: runs.Run) -> str:
    """The completed/failed directive forwarded to the worker that requested ``child``."""
    assert child.completed_at is not None
    assert child.request_id is not None
    if child.phase is Phase.SUCCEEDED:
        return directives.encode(
            directives.RoutineCompleted(
                run_id=child.run_id,
                attempt=child.attempt,
                request_id=child.request_id,
                result=child.result,
                completed_at=child.completed_at,
            )
        )
    return directives.encode(
        directives.RoutineFailed(
            run_id=child.run_id,
            attempt=child.attempt,
            request_id=child.request_id,
            error=child.error or directives.ErrorInfo(type=child.phase.value, message=child.message, retryable=False),
            completed_at=child.completed_at,
        )
    )
