"""A work queue that coalesces: many changes of one key, one piece of work.

:class:`CoalescingQueue` is client-go's ``workqueue`` in asyncio. Adding a key marks it
dirty; a fixed number of worker tasks take dirty keys in FIFO order and process them.
A key is never processed twice at once: added while in progress, it is taken again
once that run is done, with whatever state it has by then. So a burst of changes to
one Routine costs one write (or two, when the burst straddles a write in flight), and
the number of requests in flight is bounded by the number of workers.

``add`` never awaits: callers on the directive loop's hot path only mark keys dirty.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from workpath_operator.service import aiotasks

logger = logging.getLogger("workpath.kubernetes")

K = TypeVar("K", bound=Hashable)


class CoalescingQueue(Generic[K]):  # noqa: UP046 - the bound TypeVar reads better as a Generic
    """Dirty keys, processed by ``workers`` tasks with ``process(key)``; each key by one task at a time."""

    def __init__(
        self,
        process: Callable[[K], Awaitable[None]],
        *,
        workers: int,
        name: str,
        linger: float = 0.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a queue needs at least one worker, not {workers}")
        self._process = process
        self._workers = workers
        self._name = name
        self._linger = linger
        self._ready: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._loop = asyncio.get_running_loop()

    def __len__(self) -> int:
        """Keys waiting or in progress."""
        return len(self._dirty | self._processing)

    def is_pending(self, key: K) -> bool:
        """Whether ``key`` waits to be processed (again)."""
        return key in self._dirty

    def add(self, key: K) -> None:
        """Mark ``key`` dirty: it will be processed (after ``linger`` if it was clean and idle)."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._idle.clear()
        if key in self._processing:
            return  # taken again when its current run is done
        if self._linger > 0:
            self._later(self._linger, self._ready_up, key)
        else:
            self._ready_up(key)

    def add_later(self, key: K, delay: float) -> None:
        """Mark ``key`` dirty in ``delay`` seconds (a retry)."""
        self._idle.clear()
        self._later(delay, self.add, key)

    def start(self) -> None:
        for n in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"workpath-{self._name}-{n}"))

    async def join(self, timeout: float) -> bool:
        """Wait until nothing is dirty, pending or in progress; False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the workers (work in progress is cancelled) and forget the retries not yet due."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await aiotasks.cancel_and_wait(self._tasks)
        self._tasks.clear()

    def _later(self, delay: float, callback: Callable[[K], None], key: K) -> None:
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            callback(key)

        timer = self._loop.call_later(delay, fire)
        self._timers.add(timer)

    def _ready_up(self, key: K) -> None:
        if key in self._dirty and key not in self._processing:
            self._ready.append(key)
            self._wake.set()

    async def _work(self) -> None:
        ready = self._ready
        while True:
            while not ready:
                self._check_idle()
                self._wake.clear()
                await self._wake.wait()
            key = ready.popleft()
            if key not in self._dirty or key in self._processing:
                continue  # a stale entry: already taken
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await self._process(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: processing %r failed", self._name, key)
            finally:
                self._processing.discard(key)
                if key in self._dirty:
                    ready.append(key)
                    self._wake.set()

    def _check_idle(self) -> None:
        if not self._dirty and not self._processing and not self._timers:
            self._idle.set()
