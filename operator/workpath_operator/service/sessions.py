"""Worker sessions: what the service knows of one worker, across its connections.

A session outlives a connection: when a worker drops and comes back within the
reconnect grace period with the same worker ID, it finds its session, its runs
and its capacity where it left them.

A session changes only through its own methods (the dispatcher, the roster and the
heartbeat call them); everything else reads it. Frames to a worker go through
:meth:`WorkerSession.send`, which never awaits: it appends to an outbox that one
writer task per connection drains. Senders stay synchronous and cheap.

A pulse check confirms to the worker the frames whose effect is *durable*, not merely read:
the heartbeat notes :meth:`WorkerSession.frames_read` and, once the store has written
everything changed until then, hands it back to :meth:`WorkerSession.made_durable`.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
from collections.abc import Callable, Hashable, Mapping, Set
from typing import TYPE_CHECKING

from workpath import directives
from workpath_operator.service import corking, runs

if TYPE_CHECKING:
    from aiohttp import web

#: In the class body, the ``runs`` property hides the module.
_Run = runs.Run


class WorkerSession:
    """One worker, known by its worker ID."""

    __slots__ = (
        "_batching",
        "_busy",
        "_connection",
        "_cordoned",
        "_deferred",
        "_disowned",
        "_draining",
        "_durable",
        "_grace_timer",
        "_holder",
        "_last_pulse",
        "_misses",
        "_outbox",
        "_patterns",
        "_pending_pulse",
        "_pool",
        "_received",
        "_runs",
        "_slots",
        "_wake",
        "_worker_id",
        "_ws",
    )

    def __init__(self, worker_id: directives.WorkerID) -> None:
        self._worker_id = worker_id
        self._pool = "default"
        self._patterns: frozenset[str] = frozenset()
        self._slots = 0
        self._busy = 0
        self._draining = False
        self._cordoned = False
        self._runs: dict[directives.RunID, runs.Run] = {}
        self._disowned: set[directives.RunID] = set()
        self._grace_timer: asyncio.TimerHandle | None = None
        self._holder: str | None = None
        # connection state
        self._ws: web.WebSocketResponse | None = None
        self._connection = 0
        self._received = 0
        self._durable = 0
        self._pending_pulse: int | None = None
        self._misses = 0
        self._last_pulse: datetime.datetime | None = None
        self._outbox: collections.deque[str] = collections.deque()
        self._deferred: dict[Hashable, Callable[[], str]] = {}
        self._batching = False
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<WorkerSession {self._worker_id} busy={self._busy}/{self._slots} runs={len(self._runs)}>"

    # -------------------------------------------------------------------- views

    @property
    def worker_id(self) -> directives.WorkerID:
        return self._worker_id

    @property
    def pool(self) -> str:
        return self._pool

    @property
    def patterns(self) -> frozenset[str]:
        """The routine ID patterns the worker announced."""
        return self._patterns

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def busy(self) -> int:
        """Runs that hold one of this worker's slots (a parent waiting on children does not)."""
        return self._busy

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def runs(self) -> Mapping[directives.RunID, runs.Run]:
        """Runs dispatched to this worker and not finished, by run ID."""
        return self._runs

    @property
    def disowned(self) -> Set[directives.RunID]:
        """Unknown runs it listed in its last ``v1.ready`` and was told to cancel: its reports of them are expected."""
        return self._disowned

    @property
    def ws(self) -> web.WebSocketResponse | None:
        """The current connection, None while disconnected."""
        return self._ws

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def holder(self) -> str | None:
        """The identity this worker ID is bound to (``Identity.holder``); None until one connects with it."""
        return self._holder

    @property
    def accepting(self) -> bool:
        """Whether the dispatcher may give this worker more runs."""
        return self._ws is not None and not self._draining and not self._cordoned and self._busy < self._slots

    @property
    def full(self) -> bool:
        """Whether every slot is taken (a parent taking its slot back may briefly put it over)."""
        return self._busy >= self._slots

    # --------------------------------------------------------- what it announced

    def announce(self, ready: directives.Ready) -> None:
        """Take the pool, patterns and slots of a ``v1.ready``; a worker that says ready is not draining."""
        self._pool = ready.pool
        self._patterns = frozenset(ready.routines)
        self._slots = ready.slots
        self._draining = False

    @property
    def cordoned(self) -> bool:
        """Whether the service gives this worker no new runs (its pool is scaling it away)."""
        return self._cordoned

    def set_cordoned(self, cordoned: bool) -> bool:
        """Give the worker no new runs (or again); True if that changed. A reconnect keeps it."""
        if cordoned == self._cordoned:
            return False
        self._cordoned = cordoned
        return True

    def set_draining(self, draining: bool) -> bool:
        """Record whether the worker is draining; True if that changed."""
        if draining == self._draining:
            return False
        self._draining = draining
        return True

    # --------------------------------------------------------------- its runs

    def hold(self, run: _Run) -> None:
        """``run`` was dispatched to (or kept by) this worker."""
        self._runs[run.run_id] = run

    def drop(self, run_id: directives.RunID) -> _Run | None:
        """The run is off this worker; the run it held, if any."""
        return self._runs.pop(run_id, None)

    def take(self, run: _Run) -> bool:
        """``run`` was dispatched to this worker and takes a slot; whether every slot is taken now."""
        self._runs[run.run_id] = run
        self._busy += 1
        return self._busy >= self._slots

    def occupy(self) -> None:
        """One more run holds a slot."""
        self._busy += 1

    def vacate(self) -> None:
        """One run less holds a slot."""
        self._busy -= 1

    def disown(self, run_id: directives.RunID) -> None:
        """The worker was told to drop a run the service does not know: its last reports of it are expected."""
        self._disowned.add(run_id)

    # --------------------------------------------------------------- connection

    def connect(self, ws: web.WebSocketResponse, *, holder: str) -> None:
        """A new connection of ``holder``, opened by the ``v1.ready`` just read: frames are counted from it.

        The first holder binds the worker ID for the session's life; the roster refuses any other before this.
        """
        self._holder = holder
        self._ws = ws
        self._batching = ws.ws_protocol == directives.BATCHES
        self._connection += 1
        self._received = 1
        self._durable = 0
        self._pending_pulse = None
        self._misses = 0
        self._disowned = set()
        self._outbox.clear()
        self._deferred.clear()

    def disconnect(self) -> None:
        self._ws = None
        self._outbox.clear()
        self._deferred.clear()
        self._wake.set()  # let the writer see the connection is gone

    def start_grace(self, timer: asyncio.TimerHandle) -> None:
        """Keep the worker's runs until ``timer`` fires (a grace period started again replaces the old one)."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._grace_timer = timer

    def end_grace(self) -> None:
        """The grace period is over (the worker is back, lost, or the timer fired)."""
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    # ----------------------------------------------------------------- pulses

    def frame_received(self) -> None:
        """Count one directive read on this connection, alone or in a batch (the pulse tells the worker how many)."""
        self._received += 1

    @property
    def awaiting_pulse(self) -> bool:
        return self._pending_pulse is not None

    @property
    def last_pulse(self) -> datetime.datetime | None:
        """When the worker last answered a pulse check (None before its first answer): how alive it looks."""
        return self._last_pulse

    def frames_read(self) -> tuple[int, int]:
        """(this connection's number, the directives read on it so far): what a store barrier taken now covers."""
        return self._connection, self._received

    def made_durable(self, connection: int, received: int) -> None:
        """The effects of the first ``received`` directives of ``connection`` are written: pulses may confirm them."""
        if connection == self._connection and received > self._durable:
            self._durable = received

    @property
    def confirmable(self) -> int:
        """The frames a pulse check confirms: read, and their effects written."""
        return self._durable

    def check_pulse(self, pulse_id: int) -> None:
        """Send ``check_pulse`` (confirming the durable frames only) and await its answer."""
        self._pending_pulse = pulse_id
        self.send(directives.encode(directives.CheckPulse(id=pulse_id, received=self._durable)))

    def pulse_answered(self, pulse_id: int) -> None:
        """A ``give_pulse`` answered a check: the worker is alive, misses are forgiven (a stale answer is not)."""
        if pulse_id == self._pending_pulse:
            self._pending_pulse = None
            self._misses = 0
            self._last_pulse = directives.now()

    def miss_pulse(self) -> int:
        """One more heartbeat round passed with the last pulse unanswered; the misses in a row."""
        self._misses += 1
        return self._misses

    # ------------------------------------------------------------------ frames

    def send(self, frame: str) -> None:
        """Queue one frame for the worker; a no-op while it is disconnected."""
        if self._ws is None:
            return
        self._outbox.append(frame)
        self._wake.set()

    def defer(self, key: Hashable, frame: Callable[[], str]) -> None:
        """Queue ``frame()`` when the writer next writes, unless :meth:`forget` comes first: for a frame a later
        one may stand for (a sub-routine's forwarded ``starting``, when it ends before that goes out).

        Only to a worker that asked for :data:`~workpath.directives.BATCHES`: any other gets ``frame()`` at once.
        """
        if self._ws is None:
            return
        if not self._batching:
            self.send(frame())
            return
        self._deferred[key] = frame
        self._wake.set()

    def forget(self, key: Hashable) -> None:
        """Drop the frame :meth:`defer` left under ``key``, if it is not written yet."""
        self._deferred.pop(key, None)

    async def write(self, ws: web.WebSocketResponse) -> None:
        """Drain the outbox into ``ws`` until the connection changes or closes."""
        outbox = self._outbox
        wake = self._wake
        batching = ws.ws_protocol == directives.BATCHES
        deferred = self._deferred
        while self._ws is ws:
            await wake.wait()
            wake.clear()
            if batching:
                while self._ws is ws and (outbox or deferred):
                    if deferred:  # before every frame: a frame deferred waits for one frame at most
                        outbox.extend(frame() for frame in deferred.values())
                        deferred.clear()
                    await ws.send_str(directives.next_frame(outbox))
                continue
            if len(outbox) == 1:
                await ws.send_str(outbox.popleft())
            elif outbox:
                with corking.corked(ws):  # a batch: one segment, see the corking module
                    while outbox and self._ws is ws:
                        await ws.send_str(outbox.popleft())
