"""Worker sessions: what the service knows of one worker, across its connections.

A session outlives a connection: when a worker drops and comes back within the
reconnect grace period with the same worker ID, it finds its session, its runs
and its capacity where it left them.

Frames to a worker go through :meth:`WorkerSession.send`, which never awaits: it
appends to an outbox that one writer task per connection drains. Senders (the
dispatcher, the heartbeat) stay synchronous and cheap.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING

from workpath import directives

if TYPE_CHECKING:
    from aiohttp import web

    from workpath_operator.service import dispatching, runs

logger = logging.getLogger("workpath.service")


class WorkerSession:
    """One worker, known by its worker ID."""

    __slots__ = (
        "_outbox",
        "_wake",
        "busy",
        "disowned",
        "draining",
        "grace_timer",
        "group",
        "misses",
        "patterns",
        "pending_pulse",
        "pool",
        "received",
        "runs",
        "slots",
        "worker_id",
        "ws",
    )

    def __init__(self, worker_id: directives.WorkerID) -> None:
        self.worker_id = worker_id
        self.pool = "default"
        self.patterns: frozenset[str] = frozenset()
        self.slots = 0
        #: Runs that hold one of this worker's slots (a parent waiting on children does not).
        self.busy = 0
        self.draining = False
        #: Runs dispatched to this worker and not finished, by run ID.
        self.runs: dict[directives.RunID, runs.Run] = {}
        #: Unknown runs it listed in its last ``v1.ready`` and was told to cancel: its reports of them are expected.
        self.disowned: set[directives.RunID] = set()
        self.group: dispatching.Group | None = None
        self.grace_timer: asyncio.TimerHandle | None = None
        # connection state
        self.ws: web.WebSocketResponse | None = None
        self.received = 0
        self.pending_pulse: int | None = None
        self.misses = 0
        self._outbox: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<WorkerSession {self.worker_id} busy={self.busy}/{self.slots} runs={len(self.runs)}>"

    @property
    def connected(self) -> bool:
        return self.ws is not None

    @property
    def accepting(self) -> bool:
        """Whether the dispatcher may give this worker more runs."""
        return self.ws is not None and not self.draining and self.busy < self.slots

    def send(self, frame: str) -> None:
        """Queue one frame for the worker; a no-op while it is disconnected."""
        if self.ws is None:
            return
        self._outbox.append(frame)
        self._wake.set()

    def connect(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.received = 0
        self.pending_pulse = None
        self.misses = 0
        self._outbox.clear()

    def disconnect(self) -> None:
        self.ws = None
        self._outbox.clear()
        self._wake.set()  # let the writer see the connection is gone

    async def write(self, ws: web.WebSocketResponse) -> None:
        """Drain the outbox into ``ws`` until the connection changes or closes."""
        outbox = self._outbox
        wake = self._wake
        while self.ws is ws:
            await wake.wait()
            wake.clear()
            while outbox and self.ws is ws:
                await ws.send_str(outbox.popleft())
