"""One watch of a namespace's Routines for every run a cluster client awaits.

A client awaits any number of runs with one watch (``GET .../routines?watch=1``), not one per run: each event is
matched to the runs awaited by run ID, and the first that shows a finished phase (or the Routine's deletion)
resolves them. The watch starts with the first run awaited, after a list that resolves the runs already finished;
when the API server ends it (``timeoutSeconds``, a restart), it resumes from the last ``resourceVersion`` seen
(bookmarks included); when that is too old (410 Gone), it lists again, and a run awaited whose Routine is not in
the new list was deleted meanwhile.

A run may finish before its await is registered (its Routine created and run while the create's answer was on
its way): the outcomes of the last runs that finished unawaited are kept (:data:`RECENT`) and checked first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import random
from collections.abc import Callable
from typing import Any

from workpath import directives, errors
from workpath.clients import apiservers, frames, resources

logger = logging.getLogger("workpath.client")

#: Outcomes of runs that finished unawaited, kept for awaits registered just after (results are at most 64 KiB).
RECENT = 512
#: Seconds a watch request lasts before the API server ends it and the client resumes it.
WATCH_SECONDS = 300
_PAGE = "500"
_BACKOFF_CAP = 5.0


class _ExpiredError(Exception):
    """The resourceVersion the watch resumes from is too old (410 Gone): list again."""


@dataclasses.dataclass(slots=True)
class _Awaited:
    #: When it was registered (a number): a list sent after it must show its Routine, unless deleted.
    since: int
    futures: list[asyncio.Future[frames.Outcome]]


class RoutineWatch:
    """The watch of ``namespace``'s Routines that resolves the runs awaited (:meth:`attach`); see the module.

    ``refused`` makes the error of runs awaited when the API server refuses the list or watch (RBAC).
    """

    def __init__(
        self,
        api: apiservers.ApiServer,
        namespace: str,
        *,
        refused: Callable[[apiservers.ApiError], errors.ClientError],
        seconds: int = WATCH_SECONDS,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._refused = refused
        self._seconds = seconds
        self._awaited: dict[directives.RunID, _Awaited] = {}
        self._recent: collections.OrderedDict[directives.RunID, frames.Outcome] = collections.OrderedDict()
        self._registrations = itertools.count()
        self._version: str | None = None
        self._task: asyncio.Task[None] | None = None
        #: How many watch requests were made (the first and every resumption), for the curious and the tests.
        self.watches = 0

    def attach(self, run_id: directives.RunID, future: asyncio.Future[frames.Outcome]) -> None:
        """Resolve ``future`` with the outcome of ``run_id`` once its Routine shows one."""
        recent = self._recent.get(run_id)
        if recent is not None:
            future.set_result(recent)
            return
        awaited = self._awaited.get(run_id)
        if awaited is None:
            self._awaited[run_id] = _Awaited(since=next(self._registrations), futures=[future])
        else:
            awaited.futures.append(future)
        if self._task is None:
            self._task = asyncio.create_task(self._watch_forever(), name="workpath-client-routine-watch")

    async def close(self) -> None:
        """Stop watching; runs still awaited fail with :class:`~workpath.errors.ClientError` (they go on)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_all(errors.ClientError("the client was closed"))

    # ------------------------------------------------------------------ the watch

    async def _watch_forever(self) -> None:
        failures = 0
        while True:
            try:
                if self._version is None:
                    await self._relist()
                await self._watch()
                failures = 0
            except _ExpiredError:
                self._version = None
            except apiservers.ApiError as exc:
                if exc.status == 410:
                    self._version = None
                    continue
                if exc.status in (401, 403):
                    self._task = None
                    self._version = None
                    self._fail_all(self._refused(exc))
                    return
                failures += 1
                logger.warning("watching the Routines of %s: %s; resuming", self._namespace, exc)
                await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP, 0.1 * 2.0 ** min(failures, 16))))

    async def _relist(self) -> None:
        """Every Routine now: the runs awaited that have finished are resolved, and those whose Routine is gone."""
        mark = next(self._registrations)
        present: set[directives.RunID] = set()
        version: str | None = None
        token: str | None = None
        while True:
            query = {"limit": _PAGE} | ({"continue": token} if token else {})
            listing = await self._api.request("GET", resources.routines_path(self._namespace), query=query)
            metadata = listing.get("metadata") or {}
            version = version or metadata.get("resourceVersion")
            for body in listing.get("items") or ():
                present.add(resources.run_id_of(body))
                self._seen(body, deleted=False)
            token = metadata.get("continue")
            if not token:
                break
        for run_id, awaited in list(self._awaited.items()):
            if awaited.since < mark and run_id not in present:
                self._resolve(run_id, _gone(run_id))
        self._version = version

    async def _watch(self) -> None:
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._seconds),
            "resourceVersion": self._version or "",
        }
        self.watches += 1
        path = resources.routines_path(self._namespace)
        async for event in self._api.stream(path, query=query, idle=self._seconds + 30):
            self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = event.get("object") or {}
        if kind == "ERROR":
            if body.get("code") == 410:
                raise _ExpiredError()
            raise apiservers.ApiError(
                int(body.get("code") or 0), str(body.get("reason")), str(body.get("message")), method="WATCH", path="-"
            )
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version:
            self._version = version
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            try:
                self._seen(body, deleted=kind == "DELETED")
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("ignoring a Routine the client cannot read (%s): %r", exc, body.get("metadata"))

    # ------------------------------------------------------------------ outcomes

    def _seen(self, body: dict[str, Any], *, deleted: bool) -> None:
        outcome = resources.deleted_outcome(body) if deleted else resources.outcome_of(body)
        if outcome is None:
            return
        if outcome.run_id in self._awaited:
            self._resolve(outcome.run_id, outcome)
            return
        recent = self._recent
        recent[outcome.run_id] = outcome
        if len(recent) > RECENT:
            recent.popitem(last=False)

    def _resolve(self, run_id: directives.RunID, outcome: frames.Outcome) -> None:
        awaited = self._awaited.pop(run_id, None)
        for future in awaited.futures if awaited is not None else ():
            if not future.done():
                future.set_result(outcome)

    def _fail_all(self, failure: errors.ClientError) -> None:
        awaited, self._awaited = self._awaited, {}
        for entry in awaited.values():
            for future in entry.futures:
                if not future.done():
                    future.set_exception(failure)
                    future.exception()  # seen: a run nobody awaits any more must not log "never retrieved"


def _gone(run_id: directives.RunID) -> frames.Outcome:
    return frames.Outcome(
        request_id=0,
        run_id=run_id,
        phase=frames.Phase.CANCELLED,
        error=directives.ErrorInfo(
            type=resources.DELETED,
            message="its Routine was deleted before the run finished (while the client's watch was away)",
        ),
    )
