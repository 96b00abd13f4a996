"""Demand per worker pool: which pool each waiting run counts toward, and how busy each pool is.

The autoscaler sizes a pool from its demand: the runs queued for it plus the slots its workers hold. A queued
run counts toward exactly one pool, so two pools never both scale up for the same run:

- a run that names a pool (``spec.pool``) counts toward that pool, if such a pool is declared;
- otherwise toward the declared pool whose routine patterns match its routine ID *most specifically*: an
  exact ID beats any glob, a glob with a longer literal prefix (the part before its first wildcard) beats a
  shorter one, and a tie goes to the pool whose name sorts first. ``reports.build`` therefore counts toward a
  pool serving ``reports.build`` rather than one serving ``reports.*``, and toward ``reports.*`` rather
  than ``*``.
- a run that no declared pool serves counts toward none: it waits for a connected worker, or for a pool to
  be declared, and says so in its reason.

Which pool a (pool, routine ID) pair maps to is cached; the cache is rebuilt when the pools change, which is
rare. Counting is O(1) per change; a change of a pool's queue is reported through ``on_change`` so that the
autoscaler scales up at once instead of polling, and so is a worker of a declared pool connecting, going or
freeing a slot (so that a pool whose last run ended scales down without waiting for anything else). The slots
a pool's workers hold are counted from the workers themselves when the autoscaler asks: a dispatch moves a run
from queued to running and changes no pool's total demand.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping

_WILDCARDS = "*?["


def specificity(pattern: str) -> tuple[int, int]:
    """How specific a routine pattern is: exact IDs first, then by the length of the literal prefix."""
    cut = min((i for i, char in enumerate(pattern) if char in _WILDCARDS), default=-1)
    if cut == -1:
        return (1, len(pattern))
    return (0, cut)


def choose_pool(pools: Mapping[str, Iterable[str]], routine_id: str) -> str | None:
    """The pool a run of ``routine_id`` that names no pool counts toward, or None if no pool serves it."""
    best: tuple[tuple[int, int], str] | None = None
    for name, patterns in pools.items():
        matching = [specificity(p) for p in patterns if fnmatch.fnmatchcase(routine_id, p)]
        if not matching:
            continue
        rank = max(matching)
        # Higher specificity wins; on a tie the name that sorts first wins (hence the negated comparison).
        if best is None or rank > best[0] or (rank == best[0] and name < best[1]):
            best = (rank, name)
    return best[1] if best is not None else None


class PoolDemand:
    """Queued runs per declared pool, with the routing of runs to pools."""

    def __init__(self, *, on_change: Callable[[str], None] | None = None) -> None:
        self._pools: dict[str, frozenset[str]] = {}
        self._queued: dict[str, int] = {}
        self._routes: dict[tuple[str | None, str], str | None] = {}
        self._on_change = on_change

    def subscribe(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(pool)`` from now on whenever a pool's queue changes (one listener)."""
        self._on_change = on_change

    @property
    def pools(self) -> Mapping[str, frozenset[str]]:
        """The declared pools and their routine patterns."""
        return self._pools

    def queued(self, pool: str) -> int:
        """Runs waiting for a worker that count toward ``pool``."""
        return self._queued.get(pool, 0)

    def declare(self, pools: Mapping[str, Iterable[str]]) -> None:
        """Set the pools that exist (name -> routine patterns); the routing of new runs follows at once."""
        self._pools = {name: frozenset(patterns) for name, patterns in pools.items()}
        self._routes.clear()

    def route(self, pool: str | None, routine_id: str) -> str | None:
        """The pool a run asking for ``pool`` (None: any) and ``routine_id`` counts toward, or None."""
        key = (pool, routine_id)
        try:
            return self._routes[key]
        except KeyError:
            pass
        if pool is not None:
            chosen = pool if pool in self._pools and _serves(self._pools[pool], routine_id) else None
        else:
            chosen = choose_pool(self._pools, routine_id)
        self._routes[key] = chosen
        return chosen

    def add_queued(self, pool: str | None) -> None:
        """A run that counts toward ``pool`` (None: no pool) joined the queue."""
        if pool is not None:
            self._queued[pool] = self._queued.get(pool, 0) + 1
            if self._on_change is not None:
                self._on_change(pool)

    def workers_changed(self, pool: str) -> None:
        """A worker of ``pool`` connected, went or freed a slot: its listener hears of it (a declared pool only)."""
        if self._on_change is not None and pool in self._pools:
            self._on_change(pool)

    def remove_queued(self, pool: str | None) -> None:
        """A run that counted toward ``pool`` left the queue (dispatched, finished or re-routed)."""
        if pool is not None:
            self._queued[pool] -= 1
            if self._on_change is not None:
                self._on_change(pool)


def _serves(patterns: frozenset[str], routine_id: str) -> bool:
    return any(fnmatch.fnmatchcase(routine_id, p) for p in patterns)
