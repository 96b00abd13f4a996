"""The HTTP API of runs and workers, used by ``workpath run``, ``workpath logs`` and operators of the service.

- ``POST /v1/runs``: submit a run (the body is a run spec; 413 when its params are over ``max_params_bytes``);
  ``GET /v1/runs/{id}[?wait=SECONDS]``: read it, waiting up to ``wait`` for it to finish;
  ``DELETE /v1/runs/{id}[?reason=...]``: cancel it; ``GET /v1/runs/{id}/logs[?follow=1]``: its log lines as NDJSON.
- ``GET /v1/workers/status``: the workers the service knows and what they hold.

Every route takes the workers' bearer token. A run is looked up in the dispatcher, then in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import pydantic
from aiohttp import web

from workpath import directives
from workpath_operator.service import authenticating, dispatching, gatekeeping, limiting, runs, stores


class HttpApi:
    """The routes of the API, added to an application by :meth:`mount`."""

    def __init__(
        self,
        *,
        dispatcher: dispatching.Dispatcher,
        store: stores.RunStore,
        authenticator: authenticating.Authenticator,
    ) -> None:
        self._dispatcher = dispatcher
        self._store = store
        self._authenticator = authenticator

    def mount(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/runs", self._submit)
        router.add_get("/v1/runs/{run_id}", self._read)
        router.add_delete("/v1/runs/{run_id}", self._cancel)
        router.add_get("/v1/runs/{run_id}/logs", self._logs)
        router.add_get("/v1/workers/status", self._workers)

    async def _submit(self, request: web.Request) -> web.Response:
        await gatekeeping.authenticate(request, self._authenticator)
        try:
            spec = runs.RunSpec.model_validate_json(await request.read())
        except pydantic.ValidationError as exc:
            raise _bad_request(exc) from None
        self._check_params(spec)
        run = self._dispatcher.submit(spec)
        return _json(run.status(), status=201)

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
        await gatekeeping.authenticate(request, self._authenticator)
        run = self._find(request)
        wait = request.query.get("wait")
        if wait and not run.phase.finished:
            try:
                seconds = float(wait)
            except ValueError:
                raise web.HTTPBadRequest(text=f"wait={wait!r} is not a number of seconds") from None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._dispatcher.wait_finished(run)), seconds)
        return _json(run.status())

    async def _cancel(self, request: web.Request) -> web.Response:
        await gatekeeping.authenticate(request, self._authenticator)
        run = self._find(request)
        self._dispatcher.cancel(run.run_id, reason=request.query.get("reason", "cancelled by request"))
        return _json(run.status())

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        await gatekeeping.authenticate(request, self._authenticator)
        run = self._find(request)
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
        await gatekeeping.authenticate(request, self._authenticator)
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
            }
            for s in self._dispatcher.workers()
        ]
        return web.json_response(body)

    def _find(self, request: web.Request) -> runs.Run:
        run_id = directives.RunID(request.match_info["run_id"])
        run = self._dispatcher.get(run_id) or self._store.get(run_id)
        if run is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no run {run_id}"}), content_type="application/json")
        return run


def _json(view: runs.RunStatus, *, status: int = 200) -> web.Response:
    return web.Response(body=view.model_dump_json(exclude_none=True), status=status, content_type="application/json")


def _bad_request(exc: pydantic.ValidationError) -> web.HTTPBadRequest:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return web.HTTPBadRequest(
        text=json.dumps({"error": "invalid run spec", "problems": problems}), content_type="application/json"
    )
