"""Kubernetes Events on Routines, posted in the background within a budget.

:meth:`EventRecorder.record` never awaits and never queues without bound: a token
bucket (``rate`` per second, bursts of ``burst``) decides whether an event is kept;
kept events wait in a queue of at most ``burst`` entries for a few poster tasks. What
is over the budget is dropped and counted, as client-go's event recorder drops what
its spam filter refuses: Events are for people reading ``kubectl describe``, and a
flood of them would cost the API server more writes than the Routines themselves.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import enum
import logging
import os
import socket

from workpath_operator.kube import clients
from workpath_operator.service import aiotasks, measures

logger = logging.getLogger("workpath.kubernetes")

COMPONENT = "workpath-operator"
MAX_MESSAGE = 1024


class EventType(enum.StrEnum):
    """The ``type`` of a Kubernetes Event."""

    NORMAL = "Normal"
    WARNING = "Warning"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectRef:
    """The object an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Event:
    ref: ObjectRef
    type: str
    reason: str
    message: str
    time: datetime.datetime


class EventRecorder:
    """Posts Events with ``posters`` tasks, at most ``rate`` per second on average (0: none)."""

    def __init__(self, client: clients.KubernetesClient, *, rate: float, burst: int, posters: int = 2) -> None:
        self._client = client
        self._rate = rate
        self._burst = max(1, burst)
        self._tokens = float(self._burst)
        self._loop = asyncio.get_running_loop()
        self._refilled = self._loop.time()
        self._queue: collections.deque[_Event] = collections.deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._posters = posters
        self._tasks: list[asyncio.Task[None]] = []
        self._instance = os.environ.get("POD_NAME") or socket.gethostname()
        self.posted = 0
        self.dropped = 0
        self.failed = 0

    def record(self, ref: ObjectRef, *, type: str, reason: str, message: str) -> None:
        """Post an Event about ``ref`` soon, if the budget allows; never blocks."""
        if not self._take():
            self.dropped += 1
            return
        self._queue.append(_Event(ref, type, reason, message[:MAX_MESSAGE], datetime.datetime.now(datetime.UTC)))
        self._drained.clear()
        self._wake.set()

    def add_measures(self, board: measures.Board, *, about: str) -> None:
        """The Events posted and dropped, as the series ``object=about`` (the kind they are about)."""
        kind, labels = measures.Kind.COUNTER, ("object",)
        text = "Kubernetes Events posted, by the kind of object they are about."
        board.add("workpath_events_posted_total", text, kind=kind, read=lambda: {about: self.posted}, labels=labels)
        text = "Kubernetes Events dropped over the budget, by the kind of object."
        board.add("workpath_events_dropped_total", text, kind=kind, read=lambda: {about: self.dropped}, labels=labels)

    def start(self) -> None:
        if self._rate > 0:
            self._tasks = [
                asyncio.create_task(self._post_forever(), name=f"workpath-events-{n}") for n in range(self._posters)
            ]

    async def close(self, *, timeout: float = 2.0) -> None:
        """Post what is queued (for up to ``timeout`` seconds), then stop."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)
        await aiotasks.cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self.dropped:
            logger.info(
                "events: %d posted, %d dropped over the budget, %d failed", self.posted, self.dropped, self.failed
            )

    def _take(self) -> bool:
        if self._rate <= 0:
            return False
        now = self._loop.time()
        self._tokens = min(float(self._burst), self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0 or len(self._queue) >= self._burst:
            return False
        self._tokens -= 1.0
        return True

    async def _post_forever(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                self._wake.clear()
                await self._wake.wait()
            event = queue.popleft()
            try:
                await self._client.create_event(event.ref.namespace, self._body(event))
                self.posted += 1
            except clients.ApiError as exc:
                self.failed += 1
                logger.debug("could not post event %s on %s: %s", event.reason, event.ref.name, exc)
            if not queue:
                self._drained.set()

    def _body(self, event: _Event) -> clients.Body:
        ref = event.ref
        stamp = event.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "uid": ref.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "source": {"component": COMPONENT},
            "reportingComponent": f"workpath.dev/{COMPONENT}",
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
