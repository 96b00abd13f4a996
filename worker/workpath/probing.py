"""Probes of a worker: is it connected to the service (ready), is its event loop alive (live).

A worker serves no port, and a fixed health port would collide when several workers share a host, so a worker
started with ``--status-file`` (``WORKPATH_STATUS_FILE``) keeps its state in that file instead, and
``workpath probe ready|live`` (an exec probe) reads it:

- :class:`StatusFile` is the worker's side. It rewrites the file whole, through a temporary file renamed into
  place (a reader never sees half of it), when the state changes (starting, connecting, connected, reconnecting,
  draining, stopped) and every ``--status-interval`` seconds from the worker's event loop, never per directive.
- :func:`probe` is the probe's side: *live* means the worker's event loop runs and refreshed the file within
  ``max_age`` (by default three intervals): a worker merely reconnecting with backoff stays live, a stuck event
  loop does not, nor does a worker still starting (importing its routines: a pod's startup probe waits for that).
  *ready* means live and connected: a worker that is connecting, reconnecting or draining is not ready.

Ages are measured on the monotonic clock, which all processes of a host share, so that a step of the wall clock
neither restarts a worker nor hides a stuck one; the wall-clock times in the file are for people.

This module is what ``workpath probe`` runs, every few seconds in every pod: it imports only the standard library
and :mod:`workpath.errors`, never aiohttp or pydantic, and ``workpath probe`` builds no other command.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Final, Literal, get_args

from workpath import errors

logger = logging.getLogger("workpath.worker")

ENV_STATUS_FILE: Final = "WORKPATH_STATUS_FILE"
"""The variable of the worker's ``status_file`` setting, which the probe reads too."""
STALE_INTERVALS: Final = 3
"""A status file not refreshed for this many intervals fails liveness: one late refresh is not a stuck loop."""

State = Literal["starting", "connecting", "connected", "reconnecting", "draining", "stopped"]
ProbeKind = Literal["ready", "live"]

STATES: Final[tuple[State, ...]] = get_args(State)
PROBE_KINDS: Final[tuple[ProbeKind, ...]] = get_args(ProbeKind)


class StatusFileError(errors.WorkpathError):
    """The status file is missing or is not a worker's status; the message says which and what to check."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Status:
    """What a worker's status file says."""

    state: State
    detail: str
    """What the state is about: the service's URL, or why the last connect failed or the worker stopped."""
    since: float
    """Wall-clock time the state began."""
    updated: float
    """Wall-clock time of the last write."""
    clock: float
    """Monotonic time of the last write: what liveness measures."""
    interval: float
    """Seconds between refreshes while the worker's event loop runs."""
    worker_id: str
    pid: int

    def age(self) -> float:
        """Seconds since the worker last wrote the file."""
        return max(0.0, time.monotonic() - self.clock)

    def describe(self) -> str:
        """The state in words: ``connected (ws://...) for 12s``."""
        about = f" ({self.detail})" if self.detail else ""
        return f"{self.state}{about} for {_seconds(time.time() - self.since)}"


class StatusFile:
    """The worker's status file at ``path``: written on every change of state and on :meth:`refresh`.

    A write that fails (a read-only or full disk) is logged, once per distinct error, and the worker goes on:
    its probes will fail and say that the file is missing or stale.
    """

    def __init__(self, path: pathlib.Path, *, worker_id: str, interval: float) -> None:
        self.path = path
        self.worker_id = worker_id
        self.interval = interval
        self._state: State = "starting"
        self._detail = ""
        self._since = time.time()
        self._written: tuple[State, str] | None = None
        self._failure = ""

    @property
    def state(self) -> State:
        return self._state

    def set(self, state: State, detail: str = "") -> None:
        """Record ``state`` (and what it is about); the file is rewritten only if either changed."""
        if (state, detail) == self._written:
            return
        if state != self._state:
            self._since = time.time()
        self._state, self._detail = state, detail
        self.refresh()

    def refresh(self) -> None:
        """Rewrite the file with the current state: the worker's event loop is alive."""
        status = {
            "state": self._state,
            "detail": self._detail,
            "since": self._since,
            "updated": time.time(),
            "clock": time.monotonic(),
            "interval": self.interval,
            "worker_id": self.worker_id,
            "pid": os.getpid(),
        }
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(status) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            if str(exc) != self._failure:
                logger.warning("cannot write the status file %s: %s; probes of this worker will fail", self.path, exc)
            self._failure = str(exc)
            self._written = None
        else:
            self._failure = ""
            self._written = (self._state, self._detail)

    async def keep_fresh(self) -> None:
        """Refresh the file every interval until cancelled: run in the worker's event loop, it shows it is alive."""
        import asyncio  # here: the probe command, which imports this module, needs no event loop

        while True:
            await asyncio.sleep(self.interval)
            self.refresh()


def read(path: pathlib.Path) -> Status:
    """The status in the file at ``path``; :class:`StatusFileError` if there is none or it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StatusFileError(
            f"no status file at {path}: the worker has not started yet, or runs without {ENV_STATUS_FILE}={path}"
        ) from None
    except OSError as exc:
        raise StatusFileError(f"cannot read the status file {path}: {exc}") from None
    try:
        fields = json.loads(text)
        status = Status(**{field.name: fields[field.name] for field in dataclasses.fields(Status)})
    except (ValueError, TypeError, KeyError) as exc:
        raise StatusFileError(f"{path} is not a worker's status file ({type(exc).__name__}: {exc})") from None
    if status.state not in STATES:
        raise StatusFileError(f"{path} is not a worker's status file (unknown state {status.state!r})")
    return status


def probe(kind: ProbeKind, path: pathlib.Path, *, max_age: float | None = None) -> tuple[bool, str]:
    """Whether the worker whose status file is ``path`` passes probe ``kind``, and a one-line reason.

    ``max_age`` bounds the age of the file; by default :data:`STALE_INTERVALS` of the worker's own interval.
    """
    try:
        status = read(path)
    except StatusFileError as exc:
        return False, f"not {kind}: {exc}"
    bound = STALE_INTERVALS * status.interval if max_age is None else max_age
    age = status.age()
    worker = f"worker {status.worker_id} (pid {status.pid})"
    if status.state in ("starting", "stopped"):
        return False, f"not {kind}: {worker} is {status.describe()}"
    if age > bound:
        return False, (
            f"not {kind}: {worker} last refreshed {path} {_seconds(age)} ago, over {_seconds(bound)}: "
            f"its event loop is stuck (it was {status.describe()})"
        )
    if kind == "ready" and status.state != "connected":
        return False, f"not ready: {worker} is {status.describe()}"
    return True, f"{kind}: {worker} is {status.describe()}, refreshed {_seconds(age)} ago"


def _seconds(value: float) -> str:
    return f"{value:.2g}s" if value < 10 else f"{value:.0f}s"
