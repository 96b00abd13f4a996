"""Run stores: where runs are kept beyond the dispatcher's memory.

The dispatcher reports every change of a run to its store. Stores never block
the dispatcher: they record the change and persist it later, coalescing a burst
of changes to one run into one write.

- :class:`MemoryRunStore`: in memory, the embedded default of ``workpath dev``.
- :class:`SqliteRunStore`: the same, persisted to a SQLite file, so that a
  restarted ``workpath dev --db FILE`` picks up where it left off.
- The Kubernetes store (Routine resources) lives in :mod:`workpath_operator.kube.routine_store`.

Because stores write later, :meth:`RunStore.barrier` says when what was reported so far is
written: the service confirms a worker's reports only once their effect is durable, so that a
service that dies right after confirming does not lose what the worker then forgets.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

from workpath import directives
from workpath_operator.service import measures, runs

logger = logging.getLogger("workpath.store")


class RunStore(Protocol):
    """What the service needs of a store (the dispatcher's observer, plus reads)."""

    def run_changed(self, run: runs.Run) -> None: ...

    def run_log(self, run: runs.Run, entry: directives.Log) -> None: ...

    def get(self, run_id: directives.RunID) -> runs.Run | None: ...

    def logs(self, run_id: directives.RunID) -> list[directives.Log]: ...

    def follow(self, run_id: directives.RunID) -> AsyncIterator[directives.Log]: ...

    async def load(self) -> list[runs.Run]: ...

    def barrier(self) -> asyncio.Future[None]:
        """A future resolved once every change reported before the call is written (cancelled if it never will be).

        Called once per heartbeat round: it must be cheap, whatever the number of runs.
        """
        ...

    def add_measures(self, board: measures.Board) -> None:
        """Declare the store's own families (its writes, say) on the service's board; see :mod:`~.measures`."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class MemoryRunStore:
    """Runs and their logs in memory; the oldest finished runs are forgotten past ``keep``."""

    def __init__(self, *, keep: int = 100_000, log_lines_per_run: int = 1_000) -> None:
        self._runs: dict[directives.RunID, runs.Run] = {}
        self._finished: collections.deque[directives.RunID] = collections.deque()
        self._keep = keep
        self._log_lines = log_lines_per_run
        self._logs: dict[directives.RunID, collections.deque[directives.Log]] = {}
        self._followers: dict[directives.RunID, set[asyncio.Queue[directives.Log | None]]] = {}

    def run_changed(self, run: runs.Run) -> None:
        if run.run_id not in self._runs:
            self._runs[run.run_id] = run
        if run.phase.finished:
            self._finished.append(run.run_id)
            if len(self._finished) > self._keep:
                forgotten = self._finished.popleft()
                self._runs.pop(forgotten, None)
                self._logs.pop(forgotten, None)
            followers = self._followers.pop(run.run_id, None)
            if followers:
                for queue in followers:
                    _put_dropping_oldest(queue, None)

    def run_log(self, run: runs.Run, entry: directives.Log) -> None:
        lines = self._logs.get(run.run_id)
        if lines is None:
            lines = self._logs[run.run_id] = collections.deque(maxlen=self._log_lines)
        lines.append(entry)
        followers = self._followers.get(run.run_id)
        if followers:
            for queue in followers:
                _put_dropping_oldest(queue, entry)

    def get(self, run_id: directives.RunID) -> runs.Run | None:
        return self._runs.get(run_id)

    def logs(self, run_id: directives.RunID) -> list[directives.Log]:
        return list(self._logs.get(run_id, ()))

    async def follow(self, run_id: directives.RunID) -> AsyncIterator[directives.Log]:
        """The run's log lines so far, then new ones as they come, until the run finishes.

        A follower that reads slower than the run logs misses the oldest of the lines it has not read (at most
        ``log_lines_per_run`` wait for it), as it would had it asked later: nothing waits without bound.
        """
        queue: asyncio.Queue[directives.Log | None] = asyncio.Queue(maxsize=self._log_lines)
        run = self._runs.get(run_id)
        for entry in self.logs(run_id):
            yield entry
        if run is None or run.phase.finished:
            return
        self._followers.setdefault(run_id, set()).add(queue)
        try:
            while (new := await queue.get()) is not None:
                yield new
        finally:
            followers = self._followers.get(run_id)
            if followers is not None:
                followers.discard(queue)

    async def load(self) -> list[runs.Run]:
        return []

    def barrier(self) -> asyncio.Future[None]:
        """Resolved at once: memory is as durable as this store gets."""
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def add_measures(self, board: measures.Board) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    key TEXT,
    root_run_id TEXT,
    request_id TEXT,
    parent_attempt INTEGER NOT NULL DEFAULT 0
);
"""


class SqliteRunStore(MemoryRunStore):
    """A :class:`MemoryRunStore` whose runs are also written to a SQLite file.

    Changed runs are marked dirty and written in one transaction every
    ``flush_interval`` seconds, off the event loop. A batch that fails is kept
    dirty and tried again. Every change is numbered; a barrier resolves once a
    batch taken after its number is committed.
    """

    def __init__(self, path: str, *, flush_interval: float = 0.2, keep: int = 100_000) -> None:
        super().__init__(keep=keep)
        self._path = path
        self._flush_interval = flush_interval
        self._dirty: dict[directives.RunID, runs.Run] = {}
        self._db: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        #: The number of the last change, and of the last one committed.
        self._changes = 0
        self._committed = 0
        self._barriers: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def run_changed(self, run: runs.Run) -> None:
        super().run_changed(run)
        self._dirty[run.run_id] = run
        self._changes += 1

    def barrier(self) -> asyncio.Future[None]:
        """Resolved once the batch holding every change made so far is committed."""
        future = asyncio.get_running_loop().create_future()
        if self._committed >= self._changes:
            future.set_result(None)
        else:
            self._barriers.append((self._changes, future))
        return future

    async def start(self) -> None:
        self._db = sqlite3.connect(self._path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._closing.clear()
        self._task = asyncio.create_task(self._flush_forever(), name="workpath-sqlite-flush")

    async def load(self) -> list[runs.Run]:
        assert self._db is not None, "start() the store first"
        rows = self._db.execute(
            "SELECT spec, status, key, root_run_id, request_id, parent_attempt FROM runs"
        ).fetchall()
        loaded = [
            runs.from_status(
                runs.RunSpec.model_validate_json(spec),
                runs.RunStatus.model_validate_json(status),
                key=key,
                root_run_id=root,
                request_id=request_id,
                parent_attempt=parent_attempt,
            )
            for spec, status, key, root, request_id, parent_attempt in rows
        ]
        for run in loaded:
            super().run_changed(run)
        return loaded

    async def close(self) -> None:
        # The flusher is asked to stop, not cancelled: a cancelled flush would leave its write running in a thread
        # on the connection this one then writes to and closes.
        self._closing.set()
        if self._task is not None:
            (outcome,) = await asyncio.gather(self._task, return_exceptions=True)
            if isinstance(outcome, Exception):
                logger.error("the flusher of %s failed: %r", self._path, outcome)
            self._task = None
        await self._flush()
        if self._db is not None:
            self._db.close()
            self._db = None
        while self._barriers:
            self._barriers.popleft()[1].cancel()

    async def _flush_forever(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._closing.wait()
            try:
                await self._flush()
            except sqlite3.Error:
                logger.exception("could not write runs to %s; will try again", self._path)

    async def _flush(self) -> None:
        if not self._dirty or self._db is None:
            return
        dirty, self._dirty = self._dirty, {}
        upto = self._changes
        try:
            await asyncio.to_thread(self._write, _rows(dirty.values()))
        except BaseException:
            self._dirty = dirty | self._dirty  # tried again with the next batch (the newer state wins)
            raise
        self._committed = upto
        while self._barriers and self._barriers[0][0] <= upto:
            future = self._barriers.popleft()[1]
            if not future.done():
                future.set_result(None)

    def _write(self, rows: Sequence[tuple[object, ...]]) -> None:
        assert self._db is not None
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _rows(dirty: Iterable[runs.Run]) -> list[tuple[object, ...]]:
    """The rows of the ``runs`` table for these runs."""
    return [
        (
            run.run_id,
            run.spec.model_dump_json(),
            run.status().model_dump_json(),
            run.key,
            run.root_run_id,
            run.request_id,
            run.parent_attempt,
        )
        for run in dirty
    ]


def _put_dropping_oldest(queue: asyncio.Queue[directives.Log | None], item: directives.Log | None) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


def log_line(entry: directives.Log) -> str:
    """One log entry as a line of text for ``workpath logs``."""
    fields = " ".join(f"{k}={json.dumps(v)}" for k, v in entry.fields.items())
    return f"{entry.time.isoformat()} {entry.level.upper():<8} {entry.message}" + (f" {fields}" if fields else "")
