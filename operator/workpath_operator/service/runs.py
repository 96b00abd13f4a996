"""Runs: the records the dispatcher keeps, and the status view of them.

A :class:`Run` is one requested execution of a routine ID. Retries and
re-dispatches after a lost worker are new *attempts* of the same run. The record
is mutable and owned by the dispatcher (and the parts it is made of); stores and APIs read it through
:class:`RunStatus`, the shape of a Routine's ``status`` (and of the local API).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import os
import threading
from typing import Any, Protocol

from workpath import directives
from workpath.clients import frames

# The models users see live in the clients' protocol (``workpath.Client`` needs no operator package); they are
# the service's too.
Phase = frames.Phase
Retries = frames.Retries
RunSpec = frames.RunSpec
Subroutines = frames.Subroutines
RunStatus = frames.RunStatus


class Reason(enum.StrEnum):
    """Why a run is in its phase: the reason of a Routine's conditions and of the Event posted for it."""

    QUEUED = "Queued"
    DISPATCHED = "Dispatched"
    STARTED = "Started"
    ADOPTED = "Adopted"
    RETRYING = "Retrying"
    REQUEUED = "Requeued"
    RELEASED = "Released"
    WORKER_LOST = "WorkerLost"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    #: Queued, and neither a connected worker nor a declared pool can run it (yet).
    NO_WORKER = "NoWorker"
    #: A Routine whose spec makes no run (it never becomes one).
    INVALID_SPEC = "InvalidSpec"

    @classmethod
    def finished_in(cls, phase: Phase) -> Reason:
        """The reason of a run that finished in ``phase``."""
        return _FINISHED_IN[phase]

    @classmethod
    def read(cls, text: str) -> Reason | str:
        """A reason kept as text by a store: the member when it is one, else the text as it was."""
        return cls._value2member_map_.get(text, text)  # type: ignore[return-value]


_FINISHED_IN = {Phase.SUCCEEDED: Reason.SUCCEEDED, Phase.FAILED: Reason.FAILED, Phase.CANCELLED: Reason.CANCELLED}


def new_run_id() -> directives.RunID:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` makes, its bytes from a batch of ``os.urandom``.

    A fan-out creates thousands of runs in a burst: one system call and a ``uuid.UUID`` object per ID were a
    measurable share of it (this is a quarter of the cost).
    """
    raw = bytearray(_ENTROPY.take())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return directives.RunID(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")


class _Entropy:
    """``os.urandom`` bytes fetched 4 KiB at a time and handed out 16 at a time; a forked child starts afresh."""

    BATCH = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()  # run IDs may be made off the loop's thread too
        self._buffer = b""
        self._at = 0

    def take(self) -> bytes:
        with self._lock:
            at = self._at
            if at >= len(self._buffer):
                self._buffer = os.urandom(self.BATCH)
                at = 0
            self._at = at + 16
            return self._buffer[at : at + 16]

    def reset(self) -> None:
        """Forget the batch (in a forked child: never hand out the parent's bytes again)."""
        self._buffer = b""
        self._at = 0


_ENTROPY = _Entropy()
os.register_at_fork(after_in_child=_ENTROPY.reset)


@dataclasses.dataclass(slots=True, eq=False)
class Run:
    """One run, as the dispatcher tracks it. Mutated only by the dispatcher and its parts."""

    run_id: directives.RunID
    spec: RunSpec
    created_at: datetime.datetime
    #: Where the run came from, opaque to the dispatcher (a Routine's namespace/name).
    key: str | None = None
    parent_run_id: directives.RunID | None = None
    root_run_id: directives.RunID | None = None
    #: The requesting worker's ID for this child run, and the parent attempt that asked.
    request_id: directives.RequestID | None = None
    parent_attempt: int = 0

    phase: Phase = Phase.PENDING
    attempt: int = 0
    failures: int = 0
    worker: directives.WorkerID | None = None
    started_at: datetime.datetime | None = None
    completed_at: datetime.datetime | None = None
    result: Any = None
    error: directives.ErrorInfo | None = None
    #: Why the run is in its phase, for conditions and events; a run rebuilt from a store keeps the text it had.
    reason: Reason | str = Reason.QUEUED
    message: str = ""

    # sub-routines: children by the parent's requestID, and counters.
    children: dict[directives.RequestID, Run] | None = None
    children_total: int = 0
    children_succeeded: int = 0
    children_failed: int = 0
    children_running: int = 0
    #: Unfinished children; while > 0 the run lends its slot to its children.
    waiting: int = 0

    # dispatcher bookkeeping: the matcher's arrival number and queued flag, the slot, the pending timer.
    seq: int = 0
    queued: bool = False
    #: The declared pool this run counts toward while it is queued (None: no pool serves it).
    demand_pool: str | None = None
    holds_slot: bool = False
    queued_at: float = 0.0
    timer: asyncio.TimerHandle | None = None

    # the log rate limit (a token bucket; None: full), and the lines dropped since the run was last told.
    log_tokens: float | None = None
    log_refilled: float = 0.0
    logs_dropped: int = 0

    @property
    def routine_id(self) -> directives.RoutineID:
        return self.spec.routine_id

    @property
    def run_time(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    @property
    def round_trip_time(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.created_at).total_seconds()

    def status(self) -> RunStatus:
        return RunStatus(
            phase=self.phase,
            run_id=self.run_id,
            routine_id=self.spec.routine_id,
            attempt=self.attempt,
            worker=self.worker,
            created_at=self.created_at,
            started_at=self.started_at,
            completed_at=self.completed_at,
            run_time_seconds=self.run_time,
            round_trip_seconds=self.round_trip_time,
            result=self.result,
            error=self.error,
            parent_run_id=self.parent_run_id,
            reason=self.reason,
            message=self.message,
            subroutines=Subroutines(
                total=self.children_total,
                succeeded=self.children_succeeded,
                failed=self.children_failed,
                running=self.children_running,
            )
            if self.children_total
            else None,
        )


class RunObserver(Protocol):
    """Told of every change of a run, and of its log lines (the run store)."""

    def run_changed(self, run: Run) -> None: ...

    def run_log(self, run: Run, entry: directives.Log) -> None: ...


def from_status(
    spec: RunSpec,
    status: RunStatus,
    *,
    key: str | None = None,
    root_run_id: directives.RunID | None = None,
    request_id: directives.RequestID | None = None,
    parent_attempt: int = 0,
) -> Run:
    """Rebuild a run from what a store kept (after a restart)."""
    subroutines = status.subroutines or Subroutines()
    return Run(
        run_id=status.run_id,
        spec=spec,
        created_at=status.created_at,
        key=key,
        parent_run_id=status.parent_run_id,
        root_run_id=root_run_id,
        request_id=request_id,
        parent_attempt=parent_attempt,
        phase=status.phase,
        attempt=status.attempt,
        worker=directives.WorkerID(status.worker) if status.worker else None,
        started_at=status.started_at,
        completed_at=status.completed_at,
        result=status.result,
        error=status.error,
        reason=Reason.read(status.reason),
        message=status.message,
        children_total=subroutines.total,
        children_succeeded=subroutines.succeeded,
        children_failed=subroutines.failed,
        children_running=subroutines.running,
    )
