"""The roster of workers: who is attached, who may come back, who is gone; and settling after a restart.

A worker attaches by saying ``v1.ready`` on a new connection. Its session is found again (or made), takes the
pool, patterns and slots it announces, and the runs are reconciled with the list it holds: a run the service
gave it but it no longer holds is queued again; a newer attempt the service never recorded (it restarted before
writing the dispatch down) is adopted rather than started twice; anything else it holds is not its to run and
is cancelled. Children that finished meanwhile are answered again.

A worker ID is bound to the identity that first attached with it (its ``holder``: a pod, a user, or the
shared token) for as long as its session exists, connected or in its grace period: another identity announcing
it is refused and changes nothing, so the holder's runs go on and their reports are still its own.

A worker that disconnects keeps its runs for the reconnect grace period; past it, or when the heartbeat finds it
unresponsive, it is lost and its runs are queued again. When its process is known gone (:meth:`Roster.gone`: its
pod was deleted or its container terminated, its local process exited) it is lost at once; if its connection is
still open then, it is lost the moment that connection closes within :data:`GONE_WINDOW` seconds (a dead process's
kernel closes it), unless a new connection of that worker ID came first (a restarted process, whose runs are its
own).

After a restart with runs to recover, nothing is dispatched until the workers that held them are back, or
``settle_seconds`` have passed.

The roster drives the dispatcher's runs through :class:`RunKeeper`, so that it stays below the dispatcher in
the import graph.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from workpath import directives, errors
from workpath_operator.service import delegating, matching, runs, sessions, settings

if TYPE_CHECKING:
    from aiohttp import web

logger = logging.getLogger("workpath.dispatcher")

GONE_WINDOW = 5.0
"""Seconds a worker known gone while still connected is lost the moment its connection closes."""


#: In the bodies of the protocol and the roster, their ``runs`` and ``sessions`` hide the modules.
_Run = runs.Run
_Session = sessions.WorkerSession
_Reason = runs.Reason


class RunKeeper(Protocol):
    """What the roster needs of the dispatcher."""

    @property
    def runs(self) -> Mapping[directives.RunID, _Run]: ...

    @property
    def finished(self) -> Mapping[directives.RunID, _Run]: ...

    def requeue(self, run: _Run, reason: _Reason, message: str) -> None: ...

    def adopt(self, run: _Run, session: _Session, attempt: int) -> None: ...

    def occupy(self, run: _Run, session: _Session) -> None: ...

    def fill(self, session: _Session) -> None: ...


class Roster:
    """Worker sessions by worker ID, and their comings and goings; see the module's docstring."""

    def __init__(
        self,
        keeper: RunKeeper,
        *,
        matcher: matching.Matcher[_Session],
        settings: settings.ServiceSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._keeper = keeper
        self._matcher = matcher
        self._settings = settings
        self._loop = loop
        self._sessions: dict[directives.WorkerID, sessions.WorkerSession] = {}
        #: Workers awaited after a restart; nothing is dispatched while this is set.
        self._awaited: set[directives.WorkerID] | None = None
        #: Workers known gone while still connected: why, and until when their connection's close loses them.
        self._gone: dict[directives.WorkerID, tuple[str, float]] = {}

    @property
    def sessions(self) -> Mapping[directives.WorkerID, _Session]:
        return self._sessions

    @property
    def settling(self) -> bool:
        """Whether the service still waits for workers to reconnect after a restart (and dispatches nothing)."""
        return self._awaited is not None

    # -------------------------------------------------------------- comings

    def attach(self, ws: web.WebSocketResponse, ready: directives.Ready, *, holder: str) -> _Session:
        """A worker said ``v1.ready`` on a new connection: (re)join its session and reconcile runs.

        ``holder`` is who connected (``Identity.holder``); a worker ID another holder has is refused with a
        :class:`~workpath.errors.DirectiveError` before anything changes.
        """
        session = self._sessions.get(ready.worker_id)
        if session is not None and session.holder is not None and session.holder != holder:
            raise errors.DirectiveError(
                directives.ErrorCode.WORKER_ID_REFUSED,
                f"worker ID {ready.worker_id!r} is taken: another identity holds it while its session lasts "
                f"(connected, or for the reconnect grace period); connect with a worker ID of your own",
                in_reply_to=ready.KEY,
            )
        if session is None:
            session = self._sessions[ready.worker_id] = sessions.WorkerSession(ready.worker_id)
        elif session.ws is not None:
            logger.info("worker %s connected again; the new connection replaces the old", ready.worker_id)
        session.end_grace()
        self._gone.pop(ready.worker_id, None)  # a new connection: a new process, whose runs are its own
        self._matcher.leave(session)
        session.announce(ready)
        session.connect(ws, holder=holder)
        self._reconcile(session, {held.run_id: held.attempt for held in ready.running})
        delegating.resend_answers(session)
        self._matcher.join(session, pool=session.pool, patterns=session.patterns, available=session.accepting)
        if self._awaited is not None:
            self._awaited.discard(session.worker_id)
            if not self._awaited:
                self._loop.call_soon(self._settled)
        logger.info(
            "worker %s ready: pool=%s slots=%d routines=%s, holding %d run(s)",
            session.worker_id,
            session.pool,
            session.slots,
            ",".join(sorted(session.patterns)),
            len(session.runs),
        )
        self._keeper.fill(session)
        self._matcher.demand.workers_changed(session.pool)
        return session

    def set_status(self, session: _Session, status: directives.WorkerStatus) -> None:
        """The worker said it is idle, busy or draining; a draining worker is given nothing new."""
        if not session.set_draining(status == "draining"):
            return
        if session.draining:
            self._matcher.mark_unavailable(session)
            logger.info("worker %s is draining", session.worker_id)
        else:
            self._keeper.fill(session)

    # --------------------------------------------------------------- goings

    def detach(self, session: _Session, ws: web.WebSocketResponse) -> None:
        """The connection ``ws`` closed; the worker keeps its runs for the grace period."""
        if session.ws is not ws:
            return  # a newer connection already replaced it
        gone = self._gone.pop(session.worker_id, None)
        if gone is not None and self._loop.time() < gone[1]:
            self.lose(session, gone[0])
            return
        session.disconnect()
        self._matcher.mark_unavailable(session)
        logger.info(
            "worker %s disconnected; holding its %d run(s) for %.1fs",
            session.worker_id,
            len(session.runs),
            self._settings.reconnect_grace,
        )
        self._start_grace(session)
        self._matcher.demand.workers_changed(session.pool)

    def gone(self, worker_id: directives.WorkerID, *, reason: str) -> bool:
        """The worker's process is gone: lose it now, or when its connection closes; True if lost now."""
        session = self._sessions.get(worker_id)
        if session is None:
            return False
        if session.connected:
            self._gone[worker_id] = (reason, self._loop.time() + GONE_WINDOW)
            logger.info("worker %s %s; it is lost when its connection closes", worker_id, reason)
            return False
        self.lose(session, reason)
        if self._awaited is not None and worker_id in self._awaited:
            self._awaited.discard(worker_id)
            if not self._awaited:
                self._loop.call_soon(self._settled)
        return True

    def lose(self, session: _Session, reason: str) -> None:
        """The worker is gone for good (unresponsive, past its grace, its process gone): re-queue its runs."""
        self._gone.pop(session.worker_id, None)
        session.end_grace()
        session.disconnect()
        self._matcher.leave(session)
        if self._sessions.get(session.worker_id) is session:
            del self._sessions[session.worker_id]
        for run in list(session.runs.values()):
            self._keeper.requeue(run, runs.Reason.WORKER_LOST, f"worker {session.worker_id} {reason}")
        logger.warning("worker %s %s", session.worker_id, reason)
        self._matcher.demand.workers_changed(session.pool)

    # ------------------------------------------------------ after a restart

    def settle(self, awaited: set[directives.WorkerID], *, recovering: int) -> None:
        """Dispatch nothing until the ``awaited`` workers are back, or for ``settle_seconds`` at most."""
        seconds = self._settings.settle_seconds
        if seconds <= 0:
            return
        self._awaited = awaited
        self._loop.call_later(seconds, self._settled)
        logger.info(
            "recovering %d run(s); waiting up to %gs for %d worker(s) to reconnect before dispatching",
            recovering,
            seconds,
            len(awaited),
        )

    def keep(self, run: runs.Run) -> None:
        """A recovered run that was on a worker waits for that worker, for the reconnect grace period."""
        assert run.worker is not None
        session = self._sessions.get(run.worker)
        if session is None:
            session = self._sessions[run.worker] = sessions.WorkerSession(run.worker)
            self._start_grace(session)
        session.hold(run)
        if run.waiting == 0:
            self._keeper.occupy(run, session)

    # ------------------------------------------------------------ internals

    def _reconcile(self, session: _Session, held: dict[directives.RunID, int]) -> None:
        keeper = self._keeper
        for run in list(session.runs.values()):
            if held.get(run.run_id) != run.attempt:
                keeper.requeue(run, runs.Reason.REQUEUED, f"worker {session.worker_id} reconnected without it")
        for run_id, attempt in held.items():
            if run_id in session.runs:
                continue
            known = keeper.runs.get(run_id)
            if known is not None and known.worker is None and attempt > known.attempt:
                # A newer attempt than the service recorded (it restarted before writing the dispatch down):
                # the worker keeps it rather than the run starting twice.
                keeper.adopt(known, session, attempt)
            elif known is not None or run_id not in keeper.finished:
                # Given to another worker meanwhile (its reports will be refused as stale), or unknown here (its
                # Routine is gone: its reports are expected and ignored): stop this copy.
                if known is None:
                    session.disown(run_id)
                session.send(directives.encode(directives.CancelRoutine(run_id=run_id, reason="run is not yours")))

    def _settled(self) -> None:
        if self._awaited is None:
            return
        self._awaited = None
        for session in list(self._sessions.values()):
            self._keeper.fill(session)

    def _start_grace(self, session: _Session) -> None:
        session.start_grace(self._loop.call_later(self._settings.reconnect_grace, self._grace_expired, session))

    def _grace_expired(self, session: _Session) -> None:
        session.end_grace()
        if not session.connected:
            self.lose(session, f"did not reconnect within {self._settings.reconnect_grace:g}s")
