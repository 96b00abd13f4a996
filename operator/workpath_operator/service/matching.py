"""Matching queued runs to workers with a free slot, without scanning all runs or all workers.

Workers with the same pool and the same routine patterns form a :class:`Group`; each group has a heap of the
queued runs it can take (priority, then arrival) and an ordered set of its workers with a free slot, taken in
round robin. Which groups may run a (pool, routine ID) is computed once and cached until the groups change. A
run queued in several groups' heaps is taken by the first and skipped by the others when they pop it (lazy
deletion): an entry is live only while the run is queued with the arrival number it was pushed with.

The matcher knows workers only as hashable keys (the dispatcher's sessions), so that it stays below the
sessions in the import graph; whether a worker may take more runs is the caller's to say.
"""

from __future__ import annotations

import fnmatch
import heapq
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from workpath import directives
from workpath_operator.service import demand as pool_demand
from workpath_operator.service import runs

#: A heap entry: (-priority, arrival number, run); the arrival number also says whether the entry is live.
Entry = tuple[int, int, runs.Run]
GroupKey = tuple[str, frozenset[str]]


class Group[W: Hashable]:
    """Workers that can run the same routines: one pool, one set of routine patterns."""

    __slots__ = ("heap", "idle", "key", "patterns", "pool", "size")

    def __init__(self, pool: str, patterns: frozenset[str]) -> None:
        self.key: GroupKey = (pool, patterns)
        self.pool = pool
        self.patterns = patterns
        self.heap: list[Entry] = []
        #: Members with a free slot, in round-robin order (an ordered set).
        self.idle: dict[W, None] = {}
        #: Members, connected or waiting to reconnect.
        self.size = 0

    def accepts(self, pool: str | None, routine_id: str) -> bool:
        if pool is not None and pool != self.pool:
            return False
        return any(fnmatch.fnmatchcase(routine_id, pattern) for pattern in self.patterns)


class Matcher[W: Hashable]:
    """Queued runs and the groups of workers that can take them; see the module's docstring."""

    def __init__(self, *, demand: pool_demand.PoolDemand | None = None) -> None:
        #: Which declared pool each queued run counts toward, and how many each pool has.
        self.demand = demand or pool_demand.PoolDemand()
        self._groups: dict[GroupKey, Group[W]] = {}
        self._eligible: dict[tuple[str | None, str], tuple[Group[W], ...]] = {}
        self._members: dict[W, Group[W]] = {}
        self._queued: dict[directives.RunID, runs.Run] = {}
        self._seq = 0

    @property
    def queued(self) -> Mapping[directives.RunID, runs.Run]:
        """Queued runs, in arrival order."""
        return self._queued

    # ------------------------------------------------------------------ workers

    def join(self, worker: W, *, pool: str, patterns: frozenset[str], available: bool) -> None:
        """Make ``worker`` a member of the group of its kind (a new kind may take runs queued before it came)."""
        key = (pool, patterns)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(pool, patterns)
            self._eligible.clear()
            entries = [(-run.spec.priority, run.seq, run) for run in self._queued.values() if _fits(group, run)]
            heapq.heapify(entries)
            group.heap = entries
        group.size += 1
        self._members[worker] = group
        if available:
            group.idle[worker] = None

    def leave(self, worker: W) -> None:
        """The worker is no member any more; an empty group with nothing queued goes."""
        group = self._members.pop(worker, None)
        if group is None:
            return
        group.idle.pop(worker, None)
        group.size -= 1
        if group.size == 0 and not group.heap:
            del self._groups[group.key]
            self._eligible.clear()

    def mark_available(self, worker: W) -> None:
        """The worker may take a run (it keeps its place in the round robin if it was available already)."""
        group = self._members.get(worker)
        if group is not None:
            group.idle[worker] = None

    def mark_unavailable(self, worker: W) -> None:
        """The worker may take no run now (full, draining or disconnected)."""
        group = self._members.get(worker)
        if group is not None:
            group.idle.pop(worker, None)

    def assigned(self, worker: W, *, full: bool) -> None:
        """The worker was given a run: unavailable if now ``full``, else the others of its group come first."""
        group = self._members.get(worker)
        if group is None:
            return
        idle = group.idle
        if full:
            idle.pop(worker, None)
        elif len(idle) > 1 and worker in idle:
            del idle[worker]  # round robin: to the back
            idle[worker] = None

    # --------------------------------------------------------------------- runs

    def idle_worker(self, run: runs.Run) -> W | None:
        """An available worker that can take ``run``, if there is one."""
        groups = self._eligible.get((run.spec.pool, run.spec.routine_id))
        if groups is None:
            groups = self._eligible_groups(run)
        for group in groups:
            if group.idle:
                return next(iter(group.idle))
        return None

    def queue(self, run: runs.Run) -> None:
        """Queue ``run`` in the heaps of every group that can take it."""
        self._seq += 1
        run.seq = self._seq
        run.queued = True
        self._queued[run.run_id] = run
        run.demand_pool = pool = self.demand.route(run.spec.pool, run.spec.routine_id)
        self.demand.add_queued(pool)
        entry = (-run.spec.priority, run.seq, run)
        for group in self._eligible_groups(run):
            heapq.heappush(group.heap, entry)

    def withdraw(self, run: runs.Run) -> None:
        """``run`` is queued no more (taken, finished or adopted); its heap entries are skipped when popped."""
        if run.queued:
            run.queued = False
            del self._queued[run.run_id]
            self.demand.remove_queued(run.demand_pool)

    def declare_pools(self, patterns: Mapping[str, Iterable[str]]) -> list[runs.Run]:
        """Set the declared pools; the queued runs count toward the pool the new set gives them.

        Returns the queued runs whose pool changed (they may want their reason told again).
        """
        demand = self.demand
        demand.declare(patterns)
        moved = []
        for run in self._queued.values():
            pool = demand.route(run.spec.pool, run.spec.routine_id)
            if pool != run.demand_pool:
                demand.remove_queued(run.demand_pool)
                run.demand_pool = pool
                demand.add_queued(pool)
                moved.append(run)
        return moved

    def next_run(self, worker: W) -> runs.Run | None:
        """The queued run ``worker``'s group should run next (still queued: withdraw it when taken)."""
        group = self._members.get(worker)
        if group is None:
            return None
        heap = group.heap
        while heap:
            _, seq, run = heapq.heappop(heap)
            if run.queued and run.seq == seq:
                return run
        return None

    def capable(self, run: runs.Run) -> int:
        """How many member workers could run ``run``."""
        return sum(group.size for group in self._eligible_groups(run))

    def _eligible_groups(self, run: runs.Run) -> tuple[Group[W], ...]:
        cache_key = (run.spec.pool, run.spec.routine_id)
        groups = self._eligible.get(cache_key)
        if groups is None:
            groups = tuple(g for g in self._groups.values() if _fits(g, run))
            self._eligible[cache_key] = groups
        return groups


def _fits(group: Group[Any], run: runs.Run) -> bool:
    return group.accepts(run.spec.pool, run.spec.routine_id)
