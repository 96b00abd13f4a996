"""Limits on what one caller can cost the service: params size, log lines (size and rate), open sub-routines.

Each breach is refused or cut with a message that names the limit and the setting that changes it, and is
counted in :class:`Breaches` (``workpath_limit_breaches_total{limit="..."}`` in ``/metrics``). Nothing over a
limit waits in a queue: a log line over its run's rate is dropped, not buffered, and the run's log says how
many were dropped once it logs within its rate again.

- params: a Routine's (at admission), a ``POST /v1/runs`` body's, a sub-routine request's;
- a log line's size: cut to fit, with a marker;
- a run's log rate: a token bucket per run, kept on the run itself (so it goes with the run);
- a run's unfinished sub-routines: a request past the limit fails in the routine at once.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Callable
from typing import Any

import pydantic_core

from workpath import directives
from workpath_operator.service import runs

#: The ``type`` of the error a routine sees for a sub-routine refused over the limit, and for params too large.
TOO_MANY_SUBROUTINES = "TooManySubroutinesError"
PARAMS_TOO_LARGE = "ParamsTooLargeError"


class Limit(enum.StrEnum):
    """The limits, as counted in ``/metrics``."""

    PARAMS_BYTES = "params_bytes"
    LOG_LINE_BYTES = "log_line_bytes"
    LOG_RATE = "log_rate"
    OPEN_SUBROUTINES = "open_subroutines"


class Breaches:
    """How often each limit was hit since the service started."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: collections.Counter[Limit] = collections.Counter()

    def count(self, limit: Limit, times: int = 1) -> None:
        self._counts[limit] += times

    def __getitem__(self, limit: Limit) -> int:
        return self._counts[limit]


# ---------------------------------------------------------------------- params


def params_bytes(params: dict[str, Any]) -> int:
    """The size of ``params`` as compact JSON, as they travel to a worker."""
    return len(pydantic_core.to_json(params))


def params_refusal(routine_id: str, params: dict[str, Any], *, limit: int) -> str | None:
    """Why the params of a run of ``routine_id`` are refused (too large), or None."""
    size = params_bytes(params)
    if size <= limit:
        return None
    return (
        f"the params of {routine_id} are {size} bytes as JSON; the limit is {limit} bytes "
        f"(the service's --max-params-bytes, WORKPATH_MAX_PARAMS_BYTES): pass a reference to large data "
        f"(a URL, an object key) instead of the data"
    )


# ---------------------------------------------------------------------- log lines


class LogGate:
    """Cuts long ``ctx.log`` lines and drops those over their run's rate, counting both."""

    def __init__(
        self,
        *,
        max_line_bytes: int,
        lines_per_second: float,
        burst: int,
        breaches: Breaches,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_line_bytes = max_line_bytes
        self._rate = lines_per_second
        self._burst = float(burst)
        self._breaches = breaches
        self._clock = clock

    def admit(self, run: runs.Run, entry: directives.Log, *, size: int) -> list[directives.Log]:
        """The lines to keep for ``entry`` (a frame of ``size`` bytes): none, the line (cut if too long), or
        first a line saying how many were dropped before it."""
        if not self._take(run):
            run.logs_dropped += 1
            self._breaches.count(Limit.LOG_RATE)
            return []
        if size > self._max_line_bytes:
            entry = self._cut(entry, size=size)
        if not run.logs_dropped:
            return [entry]
        notice = directives.Log(
            run_id=run.run_id,
            level="warning",
            message=f"[workpath] {run.logs_dropped} log line(s) of this run were dropped: over "
            f"{self._rate:g} lines/s in bursts of {self._burst:g} (WORKPATH_LOG_LINES_PER_SECOND, "
            f"WORKPATH_LOG_BURST); the worker's stdout has them all",
            time=entry.time,
        )
        run.logs_dropped = 0
        return [notice, entry]

    def _take(self, run: runs.Run) -> bool:
        now = self._clock()
        tokens = self._burst if run.log_tokens is None else run.log_tokens
        tokens = min(self._burst, tokens + (now - run.log_refilled) * self._rate)
        run.log_refilled = now
        if tokens < 1.0:
            run.log_tokens = tokens
            return False
        run.log_tokens = tokens - 1.0
        return True

    def _cut(self, entry: directives.Log, *, size: int) -> directives.Log:
        """The line cut to fit: its fields dropped if they do not fit in half the limit, its message cut."""
        self._breaches.count(Limit.LOG_LINE_BYTES)
        limit = self._max_line_bytes
        fields = entry.fields
        fields_size = len(pydantic_core.to_json(fields)) if fields else 0
        dropped = ""
        if fields_size > limit // 2:
            fields, dropped = {}, f", its {fields_size} bytes of fields dropped"
            fields_size = 0
        marker = f" … [cut: the line was {size} bytes{dropped}; the limit is {limit} (WORKPATH_MAX_LOG_LINE_BYTES)]"
        room = max(0, limit - fields_size - len(marker.encode()) - 200)  # 200: the frame around message and fields
        message = entry.message.encode()[:room].decode(errors="ignore") + marker
        return entry.model_copy(update={"message": message, "fields": fields})
