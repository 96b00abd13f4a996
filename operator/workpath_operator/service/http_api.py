"""The HTTP API of runs and workers, used by ``workpath run``, ``workpath logs`` and operators of the service.

- ``GET /v1/runs[?limit=N]``: the runs not finished and the ``N`` (100) last finished, oldest first (``workpath
  get``); in operator mode those of the namespace named (list on Routines there);
- ``POST /v1/runs``: submit a run (the body is a run spec; 413 when its params are over ``max_params_bytes``);
  ``GET /v1/runs/{id}[?wait=SECONDS]``: read it, waiting up to ``wait`` for it to finish;
  ``DELETE /v1/runs/{id}[?reason=...]``: cancel it; ``GET /v1/runs/{id}/logs[?follow=1]``: its log lines as NDJSON.
- ``GET /v1/workers/status``: the workers the service knows, what they hold, and when each last answered a pulse.

Every route takes a bearer token, and asks the :class:`Access` whether its identity may do that:

- local mode (:class:`LocalAccess`): whoever has the shared token may do anything, and runs live in memory;
- operator mode (``kube.submitting``): every runs route names its namespace (``?namespace=NS``, required), the
  caller must be allowed the same with Routines there by Kubernetes RBAC (create to submit, get to read a run or
  its logs, delete to cancel; list in every served namespace for the workers' status), and a submitted run
  becomes a Routine, named in the answer (``routine``: ``{"namespace", "name"}``).

A run is looked up in the dispatcher, then in the store; in operator mode only in the namespace named.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
from typing import Any, Protocol

import pydantic
from aiohttp import web

from workpath import directives
from workpath_operator.service import authenticating, dispatching, gatekeeping, limiting, runs, stores

#: Finished runs ``GET /v1/runs`` lists unless told otherwise (``?limit=``).
LIST_LIMIT = 100


class Verb(enum.StrEnum):
    """What a caller does, named as the Kubernetes verb on Routines it stands for."""

    CREATE = "create"
    GET = "get"
    DELETE = "delete"
    LIST = "list"


@dataclasses.dataclass(frozen=True, slots=True)
class Submitted:
    """Where a submitted run went: its run ID, and its Routine (``namespace``, ``name``) when it has one."""

    run_id: directives.RunID
    routine: tuple[str, str] | None = None


class Access(Protocol):
    """Who may call the runs API, what each may do, and what a submitted run becomes."""

    @property
    def authenticator(self) -> authenticating.Authenticator:
        """Who the caller is (it may accept more than the workers' authenticator does)."""

    @property
    def namespaced(self) -> bool:
        """Whether every runs route names a namespace, and runs are found only in theirs."""

    async def authorize(self, identity: authenticating.Identity, *, verb: Verb, namespace: str | None) -> str | None:
        """None when ``identity`` may do ``verb`` in ``namespace`` (None: every namespace served); else why not."""

    async def submit(
        self, spec: runs.RunSpec, *, namespace: str | None, identity: authenticating.Identity
    ) -> Submitted:
        """Submit a run; :class:`SubmitError` when it cannot be."""


class SubmitError(Exception):
    """A run could not be submitted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LocalAccess:
    """Local mode: any authenticated caller may do anything; runs are submitted to the dispatcher (in memory)."""

    def __init__(self, authenticator: authenticating.Authenticator, *, dispatcher: dispatching.Dispatcher) -> None:
        self._authenticator = authenticator
        self._dispatcher = dispatcher

    @property
    def authenticator(self) -> authenticating.Authenticator:
        return self._authenticator

    @property
    def namespaced(self) -> bool:
        return False

    async def authorize(self, identity: authenticating.Identity, *, verb: Verb, namespace: str | None) -> str | None:
        return None

    async def submit(
        self, spec: runs.RunSpec, *, namespace: str | None, identity: authenticating.Identity
    ) -> Submitted:
        return Submitted(self._dispatcher.submit(spec).run_id)


class HttpApi:
    """The routes of the API, added to an application by :meth:`mount`."""

    def __init__(self, *, dispatcher: dispatching.Dispatcher, store: stores.RunStore, access: Access) -> None:
        self._dispatcher = dispatcher
        self._store = store
        self._access = access

    def mount(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/runs", self._list)
        router.add_post("/v1/runs", self._submit)
        router.add_get("/v1/runs/{run_id}", self._read)
        router.add_delete("/v1/runs/{run_id}", self._cancel)
        router.add_get("/v1/runs/{run_id}/logs", self._logs)
        router.add_get("/v1/workers/status", self._workers)

    async def _list(self, request: web.Request) -> web.Response:
        _, namespace = await self._admit(request, Verb.LIST)
        try:
            limit = int(request.query.get("limit", LIST_LIMIT))
        except ValueError:
            raise web.HTTPBadRequest(text=f"limit={request.query['limit']!r} is not a number of runs") from None
        finished = list(self._dispatcher.finished.values())[-limit:] if limit > 0 else []
        listed = sorted([*self._dispatcher.runs.values(), *finished], key=lambda run: run.created_at)
        if self._access.namespaced:
            listed = [run for run in listed if _namespace_of(run) == namespace]
        body = [_status_body(run.status(), routine=self._routine(run)) for run in listed]
        return web.json_response(body)

    async def _submit(self, request: web.Request) -> web.Response:
        identity, namespace = await self._admit(request, Verb.CREATE)
        try:
            spec = runs.RunSpec.model_validate_json(await request.read())
        except pydantic.ValidationError as exc:
            raise _bad_request(exc) from None
        self._check_params(spec)
        try:
            submitted = await self._access.submit(spec, namespace=namespace, identity=identity)
        except SubmitError as exc:
            return web.Response(
                text=json.dumps({"error": exc.message}), status=exc.status, content_type="application/json"
            )
        run = self._dispatcher.get(submitted.run_id) or self._store.get(submitted.run_id)
        status = run.status() if run is not None else _pending(submitted.run_id, spec)
        return _json(status, routine=submitted.routine, status=201)

    def _check_params(self, spec: runs.RunSpec) -> None:
        """413 for params over ``max_params_bytes``, with the limit and how to change it."""
        limit = self._dispatcher.settings.max_params_bytes
        refusal = limiting.params_refusal(spec.routine_id, spec.params, limit=limit)
        if refusal is not None:
            self._dispatcher.breaches.count(limiting.Limit.PARAMS_BYTES)
            raise web.HTTPRequestEntityTooLarge(
                max_size=limit,
                actual_size=limiting.params_bytes(spec.params),
                text=json.dumps({"error": refusal}),
                content_type="application/json",
            )

    async def _read(self, request: web.Request) -> web.Response:
        _, namespace = await self._admit(request, Verb.GET)
        run = self._find(request, namespace)
        wait = request.query.get("wait")
        if wait and not run.phase.finished:
            try:
                seconds = float(wait)
            except ValueError:
                raise web.HTTPBadRequest(text=f"wait={wait!r} is not a number of seconds") from None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._dispatcher.wait_finished(run)), seconds)
        return _json(run.status(), routine=self._routine(run))

    async def _cancel(self, request: web.Request) -> web.Response:
        _, namespace = await self._admit(request, Verb.DELETE)
        run = self._find(request, namespace)
        self._dispatcher.cancel(run.run_id, reason=request.query.get("reason", "cancelled by request"))
        return _json(run.status(), routine=self._routine(run))

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        _, namespace = await self._admit(request, Verb.GET)
        run = self._find(request, namespace)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        if request.query.get("follow") in {"1", "true", "yes"}:
            async for entry in self._store.follow(run.run_id):
                await response.write(entry.model_dump_json().encode() + b"\n")
        else:
            for entry in self._store.logs(run.run_id):
                await response.write(entry.model_dump_json().encode() + b"\n")
        await response.write_eof()
        return response

    async def _workers(self, request: web.Request) -> web.Response:
        identity = await gatekeeping.authenticate(request, self._access.authenticator)
        await self._authorize(identity, Verb.LIST, None)
        body = [
            {
                "workerID": s.worker_id,
                "pool": s.pool,
                "routines": sorted(s.patterns),
                "slots": s.slots,
                "busy": s.busy,
                "connected": s.connected,
                "draining": s.draining,
                "runs": sorted(s.runs),
                "lastPulse": s.last_pulse.isoformat() if s.last_pulse is not None else None,
            }
            for s in self._dispatcher.workers()
        ]
        return web.json_response(body)

    async def _admit(self, request: web.Request, verb: Verb) -> tuple[authenticating.Identity, str | None]:
        """Who calls (401 if nobody), in which namespace (400 if one is needed and missing), and 403 unless
        allowed."""
        identity = await gatekeeping.authenticate(request, self._access.authenticator)
        namespace = request.query.get("namespace") or None
        if self._access.namespaced and namespace is None:
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {
                        "error": "say which namespace: add ?namespace=NS to the URL; runs are Routines there, and "
                        "Kubernetes RBAC on Routines in that namespace decides what you may do"
                    }
                ),
                content_type="application/json",
            )
        await self._authorize(identity, verb, namespace)
        return identity, namespace

    async def _authorize(self, identity: authenticating.Identity, verb: Verb, namespace: str | None) -> None:
        refusal = await self._access.authorize(identity, verb=verb, namespace=namespace)
        if refusal is not None:
            raise web.HTTPForbidden(text=json.dumps({"error": refusal}), content_type="application/json")

    def _find(self, request: web.Request, namespace: str | None) -> runs.Run:
        run_id = directives.RunID(request.match_info["run_id"])
        run = self._dispatcher.get(run_id) or self._store.get(run_id)
        if run is not None and self._access.namespaced and _namespace_of(run) != namespace:
            run = None  # another namespace's run is not there: the caller learns nothing of it
        if run is None:
            where = f" in namespace {namespace}" if self._access.namespaced else ""
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no run {run_id}{where}"}), content_type="application/json"
            )
        return run

    def _routine(self, run: runs.Run) -> tuple[str, str] | None:
        if not self._access.namespaced or run.key is None:
            return None
        namespace, _, name = run.key.partition("/")
        return namespace, name


def _namespace_of(run: runs.Run) -> str | None:
    return run.key.partition("/")[0] if run.key else None


def _pending(run_id: directives.RunID, spec: runs.RunSpec) -> runs.RunStatus:
    """The status of a run accepted but not yet known to the dispatcher (its Routine waits for the watch)."""
    return runs.Run(run_id=run_id, spec=spec, created_at=directives.now()).status()


def _json(view: runs.RunStatus, *, routine: tuple[str, str] | None = None, status: int = 200) -> web.Response:
    if routine is None:
        text = view.model_dump_json(exclude_none=True)
    else:
        text = json.dumps(_status_body(view, routine=routine))
    return web.Response(text=text, status=status, content_type="application/json")


def _status_body(view: runs.RunStatus, *, routine: tuple[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = view.model_dump(mode="json", exclude_none=True)
    if routine is not None:
        body["routine"] = {"namespace": routine[0], "name": routine[1]}
    return body


def _bad_request(exc: pydantic.ValidationError) -> web.HTTPBadRequest:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return web.HTTPBadRequest(
        text=json.dumps({"error": "invalid run spec", "problems": problems}), content_type="application/json"
    )
