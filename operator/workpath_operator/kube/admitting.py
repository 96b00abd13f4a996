"""Routine events in, runs out: what the operator does when it sees a Routine.

The kopf handlers hand every watch event of a Routine to :class:`Reconciler`.
Events are idempotent: a Routine whose run the operator knows already (restored at
startup, submitted before, or a child Routine it made itself) is left alone, and so
is a Routine that carries a ``status.runID``, since only the operator writes that and
it restores every unfinished one at startup. A Routine whose spec cannot be run, or whose
params are over ``max_params_bytes`` (which the CRD's schema cannot check), fails at once
with ``InvalidSpec`` and the reason. So kopf's initial listing after a
restart, and the events our own status writes cause, cost a dictionary lookup.

No finalizer: a deletion is seen in the watch (``DELETED``, or a ``deletionTimestamp``
when something else holds the Routine) and cancels the run and, through the dispatcher,
its sub-routines. So a finished Routine is deleted at once, and no write is spent on
finalizers. A Routine deleted while no operator ran is
not restored; a worker still running it is told to cancel it when it reconnects, and
a status write answered 404 cancels the run too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from workpath_operator.kube import resources, routine_store
from workpath_operator.service import dispatching, limiting, runs

logger = logging.getLogger("workpath.kubernetes")


class Reconciler:
    """Submits new Routines as runs and cancels the runs of deleted ones."""

    def __init__(self, *, store: routine_store.RoutineStore, dispatcher: dispatching.Dispatcher) -> None:
        self._store = store
        self._dispatcher = dispatcher

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event (``None`` for the initial listing, ``ADDED``, ``MODIFIED``, ``DELETED``).

        A Routine being deleted (a ``deletionTimestamp``: foreground deletion, or someone's finalizer) counts
        as deleted at once.
        """
        if event_type == "DELETED" or body["metadata"].get("deletionTimestamp"):
            self.deleted(body)
        else:
            self.seen(body)

    def seen(self, body: Mapping[str, Any]) -> None:
        run_id = resources.run_id_of(body)
        if self._dispatcher.get(run_id) is not None or self._store.knows(run_id):
            return
        metadata = body["metadata"]
        if (body.get("status") or {}).get("runID"):
            return
        try:
            spec = resources.spec_of(body)
            self._check_params(spec)
        except resources.InvalidRoutineError as exc:
            self._store.reject(body, exc)
            return
        self._store.expect(body)
        self._dispatcher.submit(spec, key=resources.key(metadata["namespace"], metadata["name"]), run_id=run_id)

    def _check_params(self, spec: runs.RunSpec) -> None:
        """Params over ``max_params_bytes`` (the CRD cannot count bytes) make the Routine invalid."""
        dispatcher = self._dispatcher
        refusal = limiting.params_refusal(spec.routine_id, spec.params, limit=dispatcher.settings.max_params_bytes)
        if refusal is not None:
            dispatcher.breaches.count(limiting.Limit.PARAMS_BYTES)
            raise resources.InvalidRoutineError(f"the Routine's spec cannot be run: {refusal}")

    def deleted(self, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        self._store.forget(body)
        where = resources.key(metadata["namespace"], metadata["name"])
        if self._dispatcher.cancel(resources.run_id_of(body), reason=f"its Routine {where} was deleted"):
            logger.info("Routine %s was deleted: its run is cancelled", where)
