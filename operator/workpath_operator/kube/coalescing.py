"""A work queue that coalesces: many changes of one key, one piece of work.

:class:`CoalescingQueue` is client-go's ``workqueue`` in asyncio. Adding a key marks it
dirty; a fixed number of worker tasks take dirty keys in FIFO order and process them.
A key is never processed twice at once: added while in progress, it is taken again
once that run is done, with whatever state it has by then. So a burst of changes to
one Routine costs one write (or two, when the burst straddles a write in flight), and
the number of requests in flight is bounded by the number of workers.

``add`` never awaits: callers on the directive loop's hot path only mark keys dirty.

:meth:`CoalescingQueue.barrier` says when the work asked for so far is done. Each key with
work outstanding keeps the number of its oldest change not yet covered by a finished piece
of work (numbers grow with every change); a barrier waits until the oldest outstanding number
is past the last one given when it was made. Work that schedules a retry of its key
(:meth:`~CoalescingQueue.add_later`) leaves that change outstanding until the retry is done.
O(1) per change and per barrier, whatever the number of keys.
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
        #: The number of the last change that made a key owe work.
        self._changes = 0
        #: Changes not yet covered by finished work, oldest first: number -> key.
        self._unwritten: collections.OrderedDict[int, K] = collections.OrderedDict()
        #: The oldest outstanding change of a key not yet taken by a worker.
        self._since: dict[K, int] = {}
        #: The oldest change a key's work in progress covers.
        self._taken: dict[K, int] = {}
        self._barriers: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

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
        self._owe(key)
        self._dirty.add(key)
        self._idle.clear()
        if key in self._processing:
            return  # taken again when its current run is done
        if self._linger > 0:
            self._later(self._linger, self._ready_up, key)
        else:
            self._ready_up(key)

    def add_later(self, key: K, delay: float) -> None:
        """Mark ``key`` dirty in ``delay`` seconds (a retry): what it owes stays owed until then."""
        self.defer(key)  # if the work in progress failed, its changes are not done
        self._idle.clear()
        self._later(delay, self.add, key)

    def defer(self, key: K) -> None:
        """The work on ``key`` waits for something else: its changes stay outstanding until it is added again."""
        if key in self._taken:
            self._retain(key)
        else:
            self._owe(key)

    def barrier(self) -> asyncio.Future[None]:
        """A future resolved once every change made so far has been processed (done, or given up without a retry).

        Cheap enough for every heartbeat round: it compares two numbers, or waits in line.
        """
        future = self._loop.create_future()
        if self._oldest() > self._changes:
            future.set_result(None)
        else:
            self._barriers.append((self._changes, future))
        return future

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
        """Stop the workers (work in progress is cancelled) and forget the retries not yet due.

        Barriers still waiting are cancelled: what they wait for will not be done by this queue.
        """
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await aiotasks.cancel_and_wait(self._tasks)
        self._tasks.clear()
        while self._barriers:
            self._barriers.popleft()[1].cancel()

    def _owe(self, key: K) -> None:
        """``key`` changed: unless a change of it is outstanding and not yet taken, this one is."""
        if key not in self._since:
            self._changes += 1
            self._since[key] = self._changes
            self._unwritten[self._changes] = key

    def _retain(self, key: K) -> None:
        """The work in progress on ``key`` will not do its changes: they stay outstanding (and cover any newer)."""
        taken = self._taken[key]
        newer = self._since.get(key)
        if newer is not None and newer != taken:
            del self._unwritten[newer]
        self._since[key] = taken

    def _oldest(self) -> int:
        """The number of the oldest change not yet processed, or one past the last change."""
        return next(iter(self._unwritten), self._changes + 1)

    def _done(self, key: K, *, cancelled: bool) -> None:
        """The work on ``key`` is over: unless cancelled or to be retried, the changes it covered are done."""
        if cancelled:
            self._retain(key)
        taken = self._taken.pop(key)
        if self._since.get(key) != taken:
            del self._unwritten[taken]
        oldest = self._oldest()
        barriers = self._barriers
        while barriers and barriers[0][0] < oldest:
            future = barriers.popleft()[1]
            if not future.done():
                future.set_result(None)

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
            self._taken[key] = self._since.pop(key)
            cancelled = True
            try:
                await self._process(key)
                cancelled = False
            except asyncio.CancelledError:
                raise
            except Exception:
                cancelled = False
                logger.exception("%s: processing %r failed", self._name, key)
            finally:
                self._processing.discard(key)
                self._done(key, cancelled=cancelled)
                if key in self._dirty:
                    ready.append(key)
                    self._wake.set()

    def _check_idle(self) -> None:
        if not self._dirty and not self._processing and not self._timers:
            self._idle.set()
