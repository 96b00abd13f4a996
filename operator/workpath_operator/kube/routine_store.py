"""The Kubernetes run store: runs reflected into Routine resources.

:class:`RoutineStore` is the dispatcher's observer in the operator. ``run_changed``
only marks the run dirty (and maybe notes an Event); a :class:`~coalescing.CoalescingQueue`
of writer tasks then writes each dirty Routine's whole ``status`` with one JSON patch
through the status subresource, at most one write in flight per Routine and a
bounded number in all, so a burst of changes to one run becomes one write and the
directive loop never waits for the API server.

A sub-routine run seen for the first time gets a child Routine, created by the same
writer just before its first status (the run itself was dispatched already). A
Routine found gone when written (404) cancels its run. A finished run is forgotten
once its last status is written; its Routine is deleted ``ttlSecondsAfterFinished``
later when the spec asks for it.

After a restart, :meth:`RoutineStore.load` rebuilds the runs from the Routines.

:meth:`RoutineStore.barrier` resolves once every Routine dirty when it was asked has had a write
finish after that (a write given up for good, such as a 404, finishes too; one retried after a
transient error does not yet): the service confirms a worker's reports only then.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from workpath import directives
from workpath_operator.kube import clients, coalescing, recording, resources, settings
from workpath_operator.service import measures, runs, stores

logger = logging.getLogger("workpath.kubernetes")

#: The Event posted when a run takes on a reason: its type, and its message made from the run.
_NORMAL, _WARNING = recording.EventType.NORMAL, recording.EventType.WARNING
_EVENTS: dict[str, tuple[recording.EventType, Callable[[runs.Run], str]]] = {
    runs.Reason.QUEUED: (_NORMAL, lambda run: f"{run.routine_id} is queued"),
    runs.Reason.STARTED: (_NORMAL, lambda run: f"attempt {run.attempt} started on {run.worker}"),
    runs.Reason.ADOPTED: (_NORMAL, lambda run: run.message),
    runs.Reason.SUCCEEDED: (_NORMAL, lambda run: f"succeeded in {run.run_time or 0:.3f}s on {run.worker}"),
    runs.Reason.FAILED: (_WARNING, lambda run: f"{run.error.type}: {run.error.message}" if run.error else run.message),
    runs.Reason.RETRYING: (_WARNING, lambda run: run.message),
    runs.Reason.CANCELLED: (_NORMAL, lambda run: run.message),
    runs.Reason.REQUEUED: (_WARNING, lambda run: run.message),
    runs.Reason.WORKER_LOST: (_WARNING, lambda run: run.message),
    runs.Reason.RELEASED: (_NORMAL, lambda run: run.message),
    runs.Reason.NO_WORKER: (_WARNING, lambda run: run.message),
}
_EVENTS_BEFORE_CREATION = 8
_CLOSE_TIMEOUT = 5.0

Target = tuple[str, str, str]  # namespace, name, uid


@dataclasses.dataclass(slots=True, eq=False)
class _Record:
    """What the store keeps of one run's Routine until the run's last status is written."""

    namespace: str
    name: str
    #: None until a sub-routine's Routine is created.
    uid: str | None
    generation: int
    conditions: resources.Conditions
    run: runs.Run | None = None
    #: The Routine of the parent run, for a sub-routine.
    parent: _Record | None = None
    #: The final status of a Routine that cannot be run.
    invalid: dict[str, Any] | None = None
    #: Sub-routines whose Routines wait for this one to exist (they need its uid as owner).
    waiting: list[directives.RunID] | None = None
    #: Events noted before the Routine existed.
    events: list[tuple[str, str, str]] | None = None
    #: The reason of the last Event noted.
    reason: str = ""
    #: When (``perf_counter``) the run first changed since its status was last written.
    changed_at: float | None = None
    failures: int = 0
    gone: bool = False
    #: Its creation failed for good: sub-routines waiting for it do not hold back the barrier.
    uncreatable: bool = False

    @property
    def key(self) -> str:
        return resources.key(self.namespace, self.name)


class RoutineStore:
    """Runs kept as Routine resources; see the module's docstring.

    ``on_vanished(run_id, reason)`` is called when a run's Routine is found deleted (the operator
    cancels the run).
    """

    def __init__(
        self,
        client: clients.KubernetesClient,
        *,
        settings: settings.OperatorSettings,
        on_vanished: Callable[[directives.RunID, str], object],
        finished_kept: int = 10_000,
    ) -> None:
        self.client = client
        self._namespaces: tuple[str | None, ...] = (None,) if settings.all_namespaces else settings.namespaces
        self._on_vanished = on_vanished
        self._records: dict[directives.RunID, _Record] = {}
        self._logs = stores.MemoryRunStore(keep=finished_kept)
        self._writes: coalescing.CoalescingQueue[directives.RunID] = coalescing.CoalescingQueue(
            self._write, workers=settings.status_writers, name="status", linger=settings.status_linger
        )
        self._deletions: coalescing.CoalescingQueue[Target] = coalescing.CoalescingQueue(
            self._delete, workers=2, name="ttl"
        )
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._events = recording.EventRecorder(client, rate=settings.events_per_second, burst=settings.event_burst)
        self._loop = asyncio.get_running_loop()
        #: Writes done and failed, by kind.
        self.stats: collections.Counter[str] = collections.Counter()
        #: A run's change -> its status written (the linger, the queue and the request).
        self.write_latency = measures.Histogram(measures.WRITE_BOUNDS)

    # ------------------------------------------------------------ the RunStore

    async def start(self) -> None:
        self._writes.start()
        self._deletions.start()
        self._events.start()

    async def close(self) -> None:
        """Write what is still dirty (for a few seconds at most), then stop."""
        if not await self._writes.join(_CLOSE_TIMEOUT):
            logger.warning("stopping with %d Routine status(es) not written", len(self._writes))
        await self._writes.close()
        await self._deletions.close()
        for timer in self._expiries.values():
            timer.cancel()
        self._expiries.clear()
        await self._events.close()
        logger.info(
            "Routine writes: %s; events: %d posted, %d dropped",
            ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items())) or "none",
            self._events.posted,
            self._events.dropped,
        )

    def add_measures(self, board: measures.Board) -> None:
        """Writes by kind, writes pending, change -> written, and the Events about Routines."""
        counter, gauge = measures.Kind.COUNTER, measures.Kind.GAUGE
        writes = "Writes to Routines by kind (status, create, delete, error NNN)."
        board.add("workpath_routine_writes_total", writes, kind=counter, read=lambda: self.stats, labels=("kind",))
        pending = "Routines whose status is waiting to be written."
        board.add("workpath_routine_writes_pending", pending, kind=gauge, read=lambda: {(): len(self._writes)})
        board.add(
            "workpath_status_write_latency_seconds",
            "A run's change to its Routine's status written (a burst of changes is one write).",
            kind=measures.Kind.HISTOGRAM,
            read=lambda: {(): self.write_latency},
        )
        self._events.add_measures(board, about=resources.KIND)

    async def load(self) -> list[runs.Run]:
        """The runs of the existing Routines, to restore; also schedules their pending writes and deletions."""
        bodies: list[clients.Body] = []
        for namespace in self._namespaces:
            bodies.extend(await self.client.list_routines(namespace))
        loaded: list[runs.Run] = []
        for body in bodies:
            if body["metadata"].get("deletionTimestamp"):
                continue
            run = self._restore(body)
            if run is not None:
                loaded.append(run)
        active = sum(1 for run in loaded if not run.phase.finished)
        logger.info("found %d Routine(s): %d run(s) to recover, %d finished", len(bodies), active, len(loaded) - active)
        return loaded

    def run_changed(self, run: runs.Run) -> None:
        self._logs.run_changed(run)
        record = self._records.get(run.run_id)
        if record is None:
            if run.parent_run_id is None:
                return  # not from a Routine (submitted through the runs API): kept in memory only
            record = self._adopt(run)
            if record is None:
                return
        elif record.run is None:
            record.run = run
        if run.reason != record.reason:
            record.reason = run.reason
            self._note(record, run)
        if record.changed_at is None:
            record.changed_at = time.perf_counter()
        self._writes.add(run.run_id)

    def run_log(self, run: runs.Run, entry: directives.Log) -> None:
        self._logs.run_log(run, entry)

    def barrier(self) -> asyncio.Future[None]:
        """Resolved once every status dirty now has been written (or given up for good); see the module."""
        return self._writes.barrier()

    def get(self, run_id: directives.RunID) -> runs.Run | None:
        return self._logs.get(run_id)

    def logs(self, run_id: directives.RunID) -> list[directives.Log]:
        return self._logs.logs(run_id)

    def follow(self, run_id: directives.RunID) -> AsyncIterator[directives.Log]:
        return self._logs.follow(run_id)

    # ------------------------------------------------------------ Routine events

    def knows(self, run_id: directives.RunID) -> bool:
        return run_id in self._records

    def expect(self, body: resources.Body) -> None:
        """A new Routine is about to be submitted as a run: know where to write its status."""
        metadata = body["metadata"]
        self._records[resources.run_id_of(body)] = _Record(
            namespace=metadata["namespace"],
            name=metadata["name"],
            uid=metadata["uid"],
            generation=int(metadata.get("generation") or 1),
            conditions=resources.Conditions(),
        )

    def reject(self, body: resources.Body, error: resources.InvalidRoutineError) -> None:
        """Fail a Routine that cannot be run, once, with the reason."""
        metadata = body["metadata"]
        logger.warning("Routine %s/%s cannot be run: %s", metadata["namespace"], metadata["name"], error)
        conditions = resources.Conditions()
        run_id = resources.run_id_of(body)
        self._records[run_id] = record = _Record(
            namespace=metadata["namespace"],
            name=metadata["name"],
            uid=metadata["uid"],
            generation=int(metadata.get("generation") or 1),
            conditions=conditions,
            invalid=resources.invalid_status(body, error, conditions=conditions),
            reason=runs.Reason.INVALID_SPEC,
        )
        self._post(record, _WARNING, runs.Reason.INVALID_SPEC, str(error))
        self._writes.add(run_id)

    def forget(self, body: resources.Body) -> None:
        """The Routine was deleted: write nothing more to it."""
        metadata = body["metadata"]
        timer = self._expiries.pop(resources.key(metadata["namespace"], metadata["name"]), None)
        if timer is not None:
            timer.cancel()
        record = self._records.pop(resources.run_id_of(body), None)
        if record is not None:
            record.gone = True

    # ------------------------------------------------------------ internals

    def _restore(self, body: resources.Body) -> runs.Run | None:
        metadata = body["metadata"]
        try:
            run = resources.restore(body)
        except resources.InvalidRoutineError as exc:
            if (body.get("status") or {}).get("runID"):
                logger.warning("Routine %s/%s is left alone: %s", metadata["namespace"], metadata["name"], exc)
            else:
                self.reject(body, exc)
            return None
        if run.phase.finished:
            self._expire_finished(body)
            return run
        status = body.get("status") or {}
        self._records[run.run_id] = _Record(
            namespace=metadata["namespace"],
            name=metadata["name"],
            uid=metadata["uid"],
            generation=int(metadata.get("generation") or 1),
            conditions=resources.Conditions(status.get("conditions")),
            run=run,
            reason=run.reason,
        )
        if not status.get("runID"):
            self._writes.add(run.run_id)  # show it Pending while the workers reconnect
        return run

    def _adopt(self, run: runs.Run) -> _Record | None:
        """A sub-routine seen for the first time: its Routine will be created next to its parent's."""
        parent = self._records.get(run.parent_run_id) if run.parent_run_id else None
        if parent is None or parent.gone:
            return None
        record = self._records[run.run_id] = _Record(
            namespace=parent.namespace,
            name=resources.child_name(parent.name, run.run_id),
            uid=None,
            generation=1,
            conditions=resources.Conditions(),
            run=run,
            parent=parent,
        )
        return record

    def _note(self, record: _Record, run: runs.Run) -> None:
        event = _EVENTS.get(run.reason)
        if event is not None:
            kind, message = event
            self._post(record, kind, run.reason, message(run))

    def _post(self, record: _Record, kind: str, reason: str, message: str) -> None:
        if record.uid is None:
            if record.events is None:
                record.events = []
            if len(record.events) < _EVENTS_BEFORE_CREATION:
                record.events.append((kind, reason, message))
            return
        ref = recording.ObjectRef(resources.API_VERSION, resources.KIND, record.namespace, record.name, record.uid)
        self._events.record(ref, type=kind, reason=reason, message=message)

    async def _write(self, run_id: directives.RunID) -> None:
        record = self._records.get(run_id)
        if record is None or record.gone:
            return
        if record.uid is None and not await self._create(run_id, record):
            return
        if record.invalid is not None:
            status = record.invalid
            finished = True
        elif record.run is not None:
            status = resources.status_of(record.run, conditions=record.conditions, generation=record.generation)
            finished = record.run.phase.finished
        else:
            return  # expected, not yet submitted
        changed_at, record.changed_at = record.changed_at, None
        try:
            await self.client.replace_routine_status(record.namespace, record.name, status)
        except clients.ApiError as exc:
            if changed_at is not None:
                record.changed_at = changed_at  # the next write is still that change's
            self._failed(run_id, record, exc, "write the status of")
            return
        record.failures = 0
        self.stats["status"] += 1
        if changed_at is not None:
            self.write_latency.observe(time.perf_counter() - changed_at)
        if finished and not self._writes.is_pending(run_id) and not record.gone:
            self._finished(run_id, record)

    async def _create(self, run_id: directives.RunID, record: _Record) -> bool:
        """Create a sub-routine's Routine; False when it cannot be now."""
        parent = record.parent
        if parent is None or parent.gone:
            self._drop(run_id, record)  # the parent's Routine is gone: so is the place for this one
            return False
        if parent.uid is None:
            if parent.waiting is None:
                parent.waiting = []
            parent.waiting.append(run_id)
            if not parent.uncreatable:
                self._writes.defer(run_id)  # not written until its parent exists
            return False
        assert record.run is not None
        body = resources.child_routine(
            record.run, namespace=record.namespace, name=record.name, parent_name=parent.name, parent_uid=parent.uid
        )
        try:
            created = await self.client.create_routine(record.namespace, body)
        except clients.ApiError as exc:
            if exc.status != 409:
                self._failed(run_id, record, exc, "create the sub-routine")
                return False
            found = await self._ours(record, run_id)
            if found is None:
                return False
            created = found
        self.stats["create"] += 1
        record.uid = created["metadata"]["uid"]
        record.generation = int(created["metadata"].get("generation") or 1)
        for kind, reason, message in record.events or ():
            self._post(record, kind, reason, message)
        record.events = None
        for child in record.waiting or ():
            self._writes.add(child)
        record.waiting = None
        return True

    async def _ours(self, record: _Record, run_id: directives.RunID) -> clients.Body | None:
        """The existing Routine with the name we wanted, if it is this run's (a create that was retried)."""
        try:
            existing = await self.client.get_routine(record.namespace, record.name)
        except clients.ApiError as exc:
            self._failed(run_id, record, exc, "read the sub-routine")
            return None
        if resources.run_id_of(existing) == run_id:
            return existing
        logger.error(
            "cannot create the Routine of sub-routine run %s: the name %s is taken by another Routine; "
            "the run goes on without a resource",
            run_id,
            record.key,
        )
        self._drop(run_id, record)
        return None

    def _failed(self, run_id: directives.RunID, record: _Record, exc: clients.ApiError, what: str) -> None:
        self.stats[f"error {exc.status}"] += 1
        if exc.status == 404:
            self._vanished(run_id, record)
        elif exc.transient:
            record.failures += 1
            delay = min(10.0, 0.2 * 2 ** (record.failures - 1)) * random.uniform(0.5, 1.0)
            if record.failures in {1, 5} or record.failures % 20 == 0:
                logger.warning("cannot %s Routine %s yet (try %d): %s", what, record.key, record.failures, exc)
            self._writes.add_later(run_id, delay)
        else:
            logger.error("cannot %s Routine %s: %s", what, record.key, exc)
            self._release_waiting(record)  # given up: sub-routines waiting for its creation hold nothing back

    def _vanished(self, run_id: directives.RunID, record: _Record) -> None:
        """The Routine is gone (deleted while nobody watched, or a namespace removed): cancel its run."""
        self._drop(run_id, record)
        if record.run is not None and not record.run.phase.finished:
            self._on_vanished(run_id, f"its Routine {record.key} is gone")

    def _drop(self, run_id: directives.RunID, record: _Record) -> None:
        """Write nothing more to this Routine, nor create the sub-routines' waiting for it."""
        record.gone = True
        self._records.pop(run_id, None)
        self._release_waiting(record)

    def _release_waiting(self, record: _Record) -> None:
        """Its Routine is not created now: each sub-routine waiting for it is taken again and finds it gone (and is
        dropped) or uncreatable (and waits for its next try without holding the barrier back)."""
        record.uncreatable = True
        for child in record.waiting or ():
            self._writes.add(child)
        record.waiting = None

    def _finished(self, run_id: directives.RunID, record: _Record) -> None:
        """The last status is written: forget the run, and schedule the Routine's deletion if asked."""
        del self._records[run_id]
        run = record.run
        if run is None or record.uid is None or run.spec.ttl_seconds_after_finished is None:
            return
        completed = run.completed_at or directives.now()
        self._expire(
            (record.namespace, record.name, record.uid),
            completed + datetime.timedelta(seconds=run.spec.ttl_seconds_after_finished),
        )

    def _expire_finished(self, body: resources.Body) -> None:
        ttl = resources.ttl_of(body)
        finished = resources.finished_at(body)
        if ttl is not None and finished is not None:
            metadata = body["metadata"]
            self._expire(
                (metadata["namespace"], metadata["name"], metadata["uid"]), finished + datetime.timedelta(seconds=ttl)
            )

    def _expire(self, target: Target, when: datetime.datetime) -> None:
        namespace, name, _ = target
        where = resources.key(namespace, name)
        previous = self._expiries.pop(where, None)
        if previous is not None:
            previous.cancel()
        delay = max(0.0, (when - directives.now()).total_seconds())
        self._expiries[where] = self._loop.call_later(delay, self._expired, where, target)

    def _expired(self, where: str, target: Target) -> None:
        self._expiries.pop(where, None)
        self._deletions.add(target)

    async def _delete(self, target: Target) -> None:
        namespace, name, uid = target
        try:
            await self.client.delete_routine(namespace, name, uid=uid)
        except clients.ApiError as exc:
            if exc.status in {404, 409}:
                return  # gone already, or another Routine by that name now (the uid precondition failed)
            if exc.transient:
                self._deletions.add_later(target, 1.0)
                return
            logger.error("cannot delete finished Routine %s/%s: %s", namespace, name, exc)
            return
        self.stats["delete"] += 1
        logger.info("deleted Routine %s/%s: its ttlSecondsAfterFinished passed", namespace, name)
