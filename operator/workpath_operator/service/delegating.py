"""Sub-routines: runs requested by a running routine, linked to it, their news forwarded to its worker.

A running routine asks for a child with ``v1.routine.request`` and a request ID of its own; the child is an
ordinary run, queued like any other, tied to the parent *attempt* that asked. Its start and its final
``completed``/``failed`` frame are forwarded to the parent's worker under that request ID. A replayed request
(after a reconnect, or a restart) finds the child it made before and is answered, never run twice.

Sub-routines do not deadlock the pool: while a run waits on unfinished children it lends its slot to them (the
worker's ``busy`` count drops), so even a worker with one slot runs a chain of parent -> child -> grandchild.
When the children finish, the parent takes its slot back, even if that puts the worker briefly over its slot
count; the dispatcher then gives it nothing new until it is below.

A run may have at most ``max_open`` unfinished children, each with params of at most ``max_params_bytes``: a
request past either limit is answered with a failure at once (the routine's ``ctx.call`` raises it), counted, and
makes no run.

The tree drives the dispatcher through :class:`RunKeeper` (what it needs of it), so that this module stays
below the dispatcher in the import graph.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from typing import Protocol

from workpath import directives, errors
from workpath_operator.service import limiting, runs, sessions

Phase = runs.Phase


#: In the protocol's body, its ``runs`` and ``sessions`` hide the modules.
_Run = runs.Run
_Session = sessions.WorkerSession
_Observer = runs.RunObserver


class RunKeeper(Protocol):
    """What the sub-routine tree needs of the dispatcher."""

    @property
    def runs(self) -> Mapping[directives.RunID, _Run]: ...

    @property
    def sessions(self) -> Mapping[directives.WorkerID, _Session]: ...

    @property
    def observer(self) -> _Observer: ...

    def admit(self, run: _Run) -> None: ...

    def enqueue(self, run: _Run) -> None: ...

    def occupy(self, run: _Run, session: _Session) -> None: ...

    def vacate(self, run: _Run, session: _Session) -> None: ...

    def cancel_run(self, run: _Run, reason: str) -> None: ...


class SubroutineTree:
    """Parents and their children; see the module's docstring."""

    def __init__(self, keeper: RunKeeper, *, max_open: int, max_params_bytes: int, breaches: limiting.Breaches) -> None:
        self._keeper = keeper
        self._max_open = max_open
        self._max_params_bytes = max_params_bytes
        self._breaches = breaches

    # ------------------------------------------------------- directives of a worker

    def request(
        self, session: sessions.WorkerSession, request: directives.RequestSubroutine, *, size: int | None = None
    ) -> None:
        """A running routine asks for a sub-routine (``v1.routine.request``); ``size``: the request's in bytes, if
        known (params in a request no larger than their limit need no measuring)."""
        keeper = self._keeper
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
                session.send(final_frame(child))
            return  # a replay after a reconnect: the child exists already
        refusal = self._refusal(parent, request, size)
        if refusal is not None:
            session.send(refusal)
            return
        child = _child_of(parent, request)
        parent.children[request.request_id] = child
        parent.children_total += 1
        parent.waiting += 1
        keeper.admit(child)
        keeper.observer.run_changed(parent)
        keeper.observer.run_changed(child)
        if parent.waiting == 1:
            keeper.vacate(parent, session)
        keeper.enqueue(child)

    def _refusal(self, parent: runs.Run, request: directives.RequestSubroutine, size: int | None) -> str | None:
        """The failure that answers a request over a limit (the routine sees it as the child's), or None."""
        if parent.waiting < self._max_open and size is not None and size <= self._max_params_bytes:
            return None  # its params are smaller than the request that carries them
        if parent.waiting >= self._max_open:
            limit, kind = limiting.Limit.OPEN_SUBROUTINES, limiting.TOO_MANY_SUBROUTINES
            message: str | None = (
                f"run {parent.run_id} has {parent.waiting} sub-routines unfinished; the limit is {self._max_open} "
                f"(the service's --max-open-subroutines, WORKPATH_MAX_OPEN_SUBROUTINES): wait for some before "
                f"asking for more, e.g. gather them in batches"
            )
        else:
            limit, kind = limiting.Limit.PARAMS_BYTES, limiting.PARAMS_TOO_LARGE
            message = limiting.params_refusal(request.routine_id, request.params, limit=self._max_params_bytes)
        if message is None:
            return None
        self._breaches.count(limit)
        return directives.encode(
            directives.RoutineFailed(
                run_id=runs.new_run_id(),
                attempt=0,
                request_id=request.request_id,
                error=directives.ErrorInfo(type=kind, message=message, retryable=False),
                completed_at=directives.now(),
            )
        )

    def cancel_request(self, session: sessions.WorkerSession, cancel: directives.CancelSubroutine) -> None:
        """A routine stopped waiting for a sub-routine: cancel the child, if it still runs."""
        parent = session.runs.get(cancel.parent_run_id)
        child = parent.children.get(cancel.request_id) if parent is not None and parent.children else None
        if child is not None and not child.phase.finished:
            self._keeper.cancel_run(child, cancel.reason)

    # ------------------------------------------------------ what happens to a child

    def started(self, child: runs.Run, session: sessions.WorkerSession, *, started_at: datetime.datetime) -> None:
        """A child started: count it on its parent, tell the parent's worker (when it next writes to it: a child
        that ends before that is told of in its final report alone)."""
        parent = self._parent(child)
        if parent is None:
            return
        parent.children_running += 1
        self._keeper.observer.run_changed(parent)
        requester = self._requester(child, parent)
        if requester is not None:
            # One per child: a later attempt's start stands for an earlier one not written yet.
            starting = functools.partial(_starting_frame, child, child.attempt, session.worker_id, started_at)
            requester.defer(child.run_id, starting)

    def finished(self, child: runs.Run, *, was_running: bool) -> None:
        """A child finished: count it, answer the parent's worker, give the parent its slot back when due."""
        keeper = self._keeper
        parent = self._parent(child)
        if parent is None or child.parent_attempt != parent.attempt:
            return
        if child.phase is Phase.SUCCEEDED:
            parent.children_succeeded += 1
        else:
            parent.children_failed += 1
        if was_running:
            parent.children_running -= 1
        parent.waiting -= 1
        keeper.observer.run_changed(parent)
        session = keeper.sessions.get(parent.worker) if parent.worker else None
        if session is None:
            return
        session.forget(child.run_id)
        session.send(final_frame(child))
        if parent.waiting == 0 and parent.run_id in session.runs:
            keeper.occupy(parent, session)

    # ----------------------------------------------------- what happens to a parent

    def cancel_children(self, parent: runs.Run, reason: str) -> None:
        """Cancel the children of ``parent`` that have not finished."""
        if parent.children:
            for child in parent.children.values():
                if not child.phase.finished:
                    self._keeper.cancel_run(child, reason)

    def abandon(self, run: runs.Run) -> None:
        """The current attempt of ``run`` is given up: it no longer runs for its parent, its children go."""
        if run.phase is Phase.RUNNING and run.parent_run_id is not None:
            parent = self._parent(run)
            if parent is not None and run.parent_attempt == parent.attempt:
                parent.children_running -= 1
        if run.children:
            # The next attempt asks for its own sub-routines; these belong to the lost one.
            self.cancel_children(run, f"parent run {run.run_id} attempt {run.attempt} was abandoned")
            run.children = None
            run.waiting = 0

    def link(self, known: Iterable[runs.Run]) -> None:
        """After a restart, tie children to the parent attempt that asked for them, finished ones too."""
        active = self._keeper.runs
        for run in known:
            parent = active.get(run.parent_run_id) if run.parent_run_id else None
            if parent is not None and run.request_id is not None and run.parent_attempt == parent.attempt:
                if parent.children is None:
                    parent.children = {}
                parent.children[run.request_id] = run
                if not run.phase.finished:
                    parent.waiting += 1

    def _parent(self, child: runs.Run) -> runs.Run | None:
        return self._keeper.runs.get(child.parent_run_id) if child.parent_run_id else None

    def _requester(self, child: runs.Run, parent: runs.Run) -> sessions.WorkerSession | None:
        """The session of the worker running the parent attempt that asked for ``child``, if any."""
        if parent.worker is None or child.parent_attempt != parent.attempt:
            return None
        return self._keeper.sessions.get(parent.worker)


def resend_answers(session: sessions.WorkerSession) -> None:
    """Send a reconnected worker the final frames of its runs' children that finished meanwhile."""
    for run in session.runs.values():
        if run.children:
            for child in run.children.values():
                if child.phase.finished and child.parent_attempt == run.attempt:
                    session.send(final_frame(child))


def final_frame(child: runs.Run) -> str:
    """The completed/failed directive forwarded to the worker that requested ``child``, with where and when the
    child started (its ``starting`` may not have been forwarded)."""
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
                started_at=child.started_at,
                worker_id=child.worker,
            )
        )
    return directives.encode(
        directives.RoutineFailed(
            run_id=child.run_id,
            attempt=child.attempt,
            request_id=child.request_id,
            error=child.error or directives.ErrorInfo(type=child.phase.value, message=child.message, retryable=False),
            completed_at=child.completed_at,
            started_at=child.started_at,
            worker_id=child.worker,
        )
    )


def _starting_frame(
    child: runs.Run, attempt: int, worker_id: directives.WorkerID, started_at: datetime.datetime
) -> str:
    """The ``starting`` of ``child``'s ``attempt``, forwarded to the worker that requested it."""
    return directives.encode(
        directives.RoutineStarting(
            run_id=child.run_id,
            attempt=attempt,
            request_id=child.request_id,
            worker_id=worker_id,
            started_at=started_at,
        )
    )


def _child_of(parent: runs.Run, request: directives.RequestSubroutine) -> runs.Run:
    spec = runs.RunSpec(
        routine_id=request.routine_id,
        params=request.params,
        pool=request.pool,
        priority=parent.spec.priority,
        timeout_seconds=request.timeout_seconds,
    )
    return runs.Run(
        run_id=runs.new_run_id(),
        spec=spec,
        created_at=directives.now(),
        parent_run_id=parent.run_id,
        root_run_id=parent.root_run_id or parent.run_id,
        request_id=request.request_id,
        parent_attempt=parent.attempt,
    )
