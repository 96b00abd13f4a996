"""What the WorkerPool autoscaler sees of the service: each pool's demand and workers, and cordoning.

The Kubernetes side (``kube/pooling.py``) declares the pools that exist, reads each pool's demand (runs queued for
it, slots its connected workers hold) and workers (by worker ID, which is the pod's name), hears when a pool's demand
changes, and cordons the workers it is about to let go (they get no new runs). Everything here reads the
dispatcher's state in O(workers of the pool) at most, and only when the autoscaler asks: the directive loop pays
nothing for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from workpath import directives
from workpath_operator.service import matching, runs, scaling, sessions

logger = logging.getLogger("workpath.dispatcher")

Session = sessions.WorkerSession


class _Keeper(Protocol):
    """The dispatcher, as a pool fleet needs it."""

    matcher: matching.Matcher[Session]
    observer: runs.RunObserver

    @property
    def sessions(self) -> Mapping[directives.WorkerID, Session]: ...

    def fill(self, session: Session) -> None: ...

    def mark_unservable(self, run: runs.Run) -> None: ...


class PoolFleet:
    """The pools' side of one dispatcher; see the module's docstring."""

    def __init__(self, keeper: _Keeper) -> None:
        self._keeper = keeper

    def declare_pools(self, patterns: Mapping[str, Iterable[str]]) -> None:
        """The worker pools that exist (name -> routine patterns): each queued run counts toward one of them."""
        keeper = self._keeper
        for run in keeper.matcher.declare_pools(patterns):
            if run.demand_pool is not None:
                run.reason = runs.Reason.QUEUED
                run.message = f"waiting for a worker of pool {run.demand_pool!r}"
                keeper.observer.run_changed(run)
            elif not keeper.matcher.capable(run):
                keeper.mark_unservable(run)

    def on_demand(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(pool)`` when a pool's queue changes, or a worker of it comes, goes or frees a slot."""
        self._keeper.matcher.demand.subscribe(callback)

    def pool_demand(self, pool: str) -> scaling.Demand:
        """Runs queued for ``pool``, and slots its connected workers hold."""
        running = sum(s.busy for s in self._keeper.sessions.values() if s.pool == pool and s.connected)
        return scaling.Demand(queued=self._keeper.matcher.demand.queued(pool), running=running)

    def pool_workers(self, pool: str) -> Mapping[str, tuple[int, bool]]:
        """The workers of ``pool``, by worker ID: (busy slots, connected)."""
        return {s.worker_id: (s.busy, s.connected) for s in self._keeper.sessions.values() if s.pool == pool}

    def cordon(self, worker_id: str, *, cordoned: bool) -> None:
        """Give a worker no new runs (its pool scales it away), or give it runs again."""
        session = self._keeper.sessions.get(directives.WorkerID(worker_id))
        if session is None or not session.set_cordoned(cordoned):
            return
        matcher = self._keeper.matcher
        if cordoned:
            matcher.mark_unavailable(session)
            logger.info("worker %s is cordoned: its pool is scaling it away", worker_id)
        elif session.accepting:
            matcher.mark_available(session)
            self._keeper.fill(session)
