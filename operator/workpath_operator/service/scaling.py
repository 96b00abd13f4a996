"""Scaling: how many workers a pool should have, and which workers to let go. No Kubernetes, no I/O.

A pool's *load* is its runs, queued plus running; its workers take ``slots`` runs each, so the load calls for
``ceil(load / slots)`` workers, kept within ``[min_replicas, max_replicas]``.

:class:`Scaler` adds time, as the HorizontalPodAutoscaler's scale-down stabilization does: the desired count is
the highest the load has called for over the last ``scale_down_delay`` seconds. Scaling up is therefore
immediate (the latest load is in the window), and scaling down happens only once the load has allowed fewer
workers for the whole delay. The load is a step function known at the moments it was reported, so a report
stands until the next one: a high load reported once, long ago, still counts while nothing newer replaced it.

:func:`choose_victims` picks the workers a scale-down removes: idle ones only (a busy worker is never stopped
to scale down), those not connected first. With fewer idle workers than the scale-down asks for, it scales
down by the idle ones now; the busy ones are let go later, once they are idle. Each worker's pod gets a
``pod-deletion-cost`` so that the ReplicaSet deletes the chosen pods and keeps the busy ones.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from typing import Final

VICTIM_COST: Final = -1
"""The pod-deletion-cost of a worker chosen to go: below every other (idle 0, busy its busy slots)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Demand:
    """The runs of a pool: waiting for a worker, and held by its workers."""

    queued: int = 0
    running: int = 0

    @property
    def load(self) -> int:
        return self.queued + self.running


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """A pool's scaling settings (from its spec)."""

    slots: int
    min_replicas: int
    max_replicas: int
    scale_down_delay: float
    """Seconds the load must allow fewer workers before the pool scales down."""

    def __post_init__(self) -> None:
        if self.slots < 1 or self.min_replicas < 0 or self.min_replicas > self.max_replicas:
            raise ValueError(f"need slots >= 1 and 0 <= min_replicas <= max_replicas, got {self}")
        if self.scale_down_delay < 0:
            raise ValueError(f"scale_down_delay must not be negative, got {self.scale_down_delay}")

    def workers_for(self, load: int) -> int:
        """Workers a load calls for, before the bounds: ``ceil(load / slots)``."""
        return math.ceil(max(load, 0) / self.slots)

    def bounded(self, workers: int) -> int:
        return min(max(workers, self.min_replicas), self.max_replicas)


@dataclasses.dataclass(frozen=True, slots=True)
class Recommendation:
    """What the scaler says now."""

    desired: int
    """Workers to have now: within the bounds, and not below what the load called for over the delay."""
    wanted: int
    """Workers the current load calls for, without the bounds or the delay."""
    limited: bool
    """The current load calls for more than ``max_replicas`` workers (the ScalingLimited condition)."""
    settles_at: float | None
    """When ``desired`` drops if the load stays as it is (ask again then); None if it would not drop."""


@dataclasses.dataclass(slots=True)
class _Report:
    """A load, reported at ``since``, in force until the next report (``until``, None while it is the latest)."""

    since: float
    load: int
    until: float | None = None


class Scaler:
    """One pool's scaling policy over time, with an injected clock (``time.monotonic`` by default).

    It keeps only the reports that can still be the highest in the window, highest first (a report is
    dropped when a later one is at least as high, or when it ended before the window): memory and time
    per call stay small however often the load is reported.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._reports: collections.deque[_Report] = collections.deque()

    def recommend(self, demand: Demand, *, limits: Limits) -> Recommendation:
        """Record the pool's demand as of now, and say how many workers it should have."""
        now = self._clock()
        self._record(now, demand.load)
        self._forget(before=now - limits.scale_down_delay)
        wanted = limits.workers_for(demand.load)
        desired = limits.bounded(limits.workers_for(self._reports[0].load))
        settles_at = None
        if desired > limits.bounded(wanted):
            last = [report for report in self._reports if limits.bounded(limits.workers_for(report.load)) >= desired]
            ended = last[-1].until
            settles_at = None if ended is None else ended + limits.scale_down_delay
        return Recommendation(
            desired=desired, wanted=wanted, limited=wanted > limits.max_replicas, settles_at=settles_at
        )

    def _record(self, now: float, load: int) -> None:
        if self._reports:
            self._reports[-1].until = now
        while self._reports and self._reports[-1].load <= load:
            self._reports.pop()
        self._reports.append(_Report(since=now, load=load))

    def _forget(self, *, before: float) -> None:
        """Drop the reports that ended at or before ``before``: they are out of the window."""
        while self._reports[0].until is not None and self._reports[0].until <= before:
            self._reports.popleft()


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerLoad:
    """A worker pod of a pool, and the runs its worker holds."""

    pod: str
    busy: int = 0
    """Slots holding a run (0: idle)."""
    connected: bool = True
    """Whether the pod's worker is connected to the directive service (a starting pod is not)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleDown:
    """A scale-down to do now."""

    replicas: int
    """The replicas to set: the current count minus the victims."""
    victims: tuple[str, ...]
    """Pods to drain and let go, cheapest first."""
    costs: dict[str, int]
    """The ``controller.kubernetes.io/pod-deletion-cost`` of every pod: victims lowest, busy pods by busy slots."""


def choose_victims(workers: Iterable[WorkerLoad], *, target: int) -> ScaleDown:
    """Which of ``workers`` to let go to get down to ``target``, idle ones only, and every pod's cost.

    Disconnected workers go first (they serve nothing), then idle connected ones; pods by name within each.
    With fewer idle workers than needed, only the idle ones go now; ``replicas`` stays above ``target``.
    """
    pods = sorted(workers, key=lambda worker: (worker.busy > 0, worker.connected, worker.pod))
    excess = max(len(pods) - max(target, 0), 0)
    victims = tuple(worker.pod for worker in pods[:excess] if worker.busy == 0)
    costs = {worker.pod: worker.busy for worker in pods} | dict.fromkeys(victims, VICTIM_COST)
    return ScaleDown(replicas=max(len(pods) - len(victims), target), victims=victims, costs=costs)
