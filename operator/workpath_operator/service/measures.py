"""What the service counts, as plain numbers; :mod:`~.metrics` shows them to Prometheus at scrape time.

Counting happens on the hot path (every dispatch, every finished run), so it is a dict increment or a bisect
and two additions (~100 ns), without a lock: all that counts runs on the service's one event loop, and so does
the scrape. prometheus-client's own instruments take a lock per observation (~600 ns a histogram here), and the
library comes with the ``operator`` extra only, while ``workpath dev`` counts without it.

The parts that count declare their families on the service's :class:`Board` (``DirectiveService.measures``):
a name, a HELP text, a kind, label names, and a function that reads the current values at scrape time. So a
gauge is read when asked (the queue's length, the workers' slots), never updated per event, and nothing is
sorted: a :class:`Histogram` keeps counts per bucket. To count something new::

    sent = service.measures.counter("workpath_client_frames_total", "Frames sent to clients, by kind.",
                                     labels=("kind",))
    sent[("result",)] += 1
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from workpath_operator.service import runs

#: Bucket bounds (seconds) for what takes microseconds to minutes: queued -> dispatched.
LATENCY_BOUNDS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
#: Bucket bounds (seconds) for what takes milliseconds to hours: a run's time on its worker.
DURATION_BOUNDS = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0,
)  # fmt: skip
#: Bucket bounds (seconds) for API server writes, queueing included.
WRITE_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

LabelValues = tuple[str, ...]
"""The values of a family's labels, in the order of its label names (``()`` for a family without labels)."""


class Kind(enum.StrEnum):
    """The Prometheus type of a family."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Histogram:
    """Observations counted per bucket (``counts[i]``: at most ``bounds[i]``, above the last one at the end)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


Reading = Mapping[Any, float] | Mapping[Any, Histogram]
"""A family's series: values (or histograms) keyed by their :data:`LabelValues`, or by the one label's value
(a ``str``) in a family with one label. (``Any``: ``Mapping`` is invariant in its keys, and a key of a narrower
type, ``tuple[str, str]`` or a ``StrEnum``, is fine.)"""


@dataclasses.dataclass(frozen=True, slots=True)
class Family:
    """A metric family: what it is, and how to read its series (by label values) when scraped."""

    name: str
    help: str
    kind: Kind
    labels: tuple[str, ...]
    reads: tuple[Callable[[], Reading], ...]


class Board:
    """The families of one service, by name. A name declared again (by another part, with the same kind and
    labels) adds that part's series to the family: Events about Routines and about WorkerPools, for one."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def add(self, name: str, help: str, *, kind: Kind, read: Callable[[], Reading], labels: Sequence[str] = ()) -> None:
        """Declare a family (or more series of one) whose values ``read()`` gives at scrape time."""
        family = self._families.get(name)
        if family is None:
            self._families[name] = Family(name, help, kind, tuple(labels), (read,))
        elif family.kind is kind and family.labels == tuple(labels):
            self._families[name] = dataclasses.replace(family, reads=(*family.reads, read))
        else:
            raise ValueError(f"metric {name} is declared as a {family.kind} by {family.labels}, not {kind} {labels}")

    def counter(self, name: str, help: str, *, labels: Sequence[str] = ()) -> collections.Counter[LabelValues]:
        """A new counter family, counted in the returned ``Counter`` (keys: label values)."""
        counts: collections.Counter[LabelValues] = collections.Counter()
        self.add(name, help, kind=Kind.COUNTER, read=lambda: counts, labels=labels)
        return counts

    def __iter__(self) -> Iterator[Family]:
        return iter(list(self._families.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._families


class RunMeasures:
    """What the dispatcher counts per run: queued -> dispatched, started -> completed (by phase), runs finished."""

    __slots__ = ("dispatch_latency", "durations", "finished")

    def __init__(self) -> None:
        self.dispatch_latency = Histogram(LATENCY_BOUNDS)
        finished = [phase for phase in runs.Phase if phase.finished]
        #: Started -> completed of the runs that started, by the phase they ended in.
        self.durations = {phase: Histogram(DURATION_BOUNDS) for phase in finished}
        self.finished = dict.fromkeys(finished, 0)

    def run_finished(self, run: runs.Run) -> None:
        phase = run.phase
        self.finished[phase] += 1
        started, completed = run.started_at, run.completed_at
        if started is not None and completed is not None:
            self.durations[phase].observe((completed - started).total_seconds())
