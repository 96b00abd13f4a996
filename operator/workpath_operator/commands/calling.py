"""The directive service's HTTP API as the commands call it: runs, their log lines, workers.

One :class:`ServiceApi` per command, ``async with`` it. Every refusal becomes a
:class:`~workpath_operator.commands.errors.CommandError` that says what to fix: the URL (and where it came from)
when the service cannot be reached, the token (and where it came from) on 401 and 403, the run on 404.
"""

from __future__ import annotations

import json
import types
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self

import aiohttp

from workpath import directives
from workpath.clients import targets
from workpath_operator.commands import errors

Body = dict[str, Any]


class ServiceApi:
    """The runs API at ``location``; ``namespace`` for the operator's (runs are Routines there)."""

    def __init__(self, location: targets.Location, *, namespace: str | None = None) -> None:
        self.location = location
        self.namespace = namespace
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return self.location.url

    async def __aenter__(self) -> Self:
        headers = {"Authorization": f"Bearer {self.location.token}"}
        self._http = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None, connect=10))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ------------------------------------------------------------------ runs

    async def list_runs(self, *, limit: int) -> list[Body]:
        """The runs not finished and the ``limit`` last finished, oldest first."""
        listed: list[Body] = await self._call("GET", "/v1/runs", query={"limit": str(limit)})
        return listed

    async def submit(self, spec: Body) -> Body:
        """Submit a run (a run spec, camelCase); its status, with its Routine in operator mode."""
        submitted: Body = await self._call("POST", "/v1/runs", body=spec, expect=201)
        return submitted

    async def read(self, run_id: str, *, wait: float | None = None) -> Body:
        """The run's status; with ``wait``, once it finishes or after ``wait`` seconds."""
        query = {"wait": str(wait)} if wait else {}
        status: Body = await self._call("GET", f"/v1/runs/{run_id}", query=query, run_id=run_id)
        return status

    async def cancel(self, run_id: str, *, reason: str) -> Body:
        """Cancel the run and its sub-routines; its status (a finished run stays as it ended)."""
        status: Body = await self._call("DELETE", f"/v1/runs/{run_id}", query={"reason": reason}, run_id=run_id)
        return status

    async def logs(self, run_id: str, *, follow: bool) -> AsyncIterator[directives.Log]:
        """The run's log lines the service keeps; with ``follow``, then new ones until the run ends."""
        query = {"follow": "1" if follow else "0"}
        async with self._request("GET", f"/v1/runs/{run_id}/logs", query=query) as response:
            await self._check(response, expect=200, run_id=run_id)
            async for line in response.content:
                if line.strip():
                    yield directives.Log.model_validate_json(line)

    # ------------------------------------------------------------------ workers

    async def workers(self) -> list[Body]:
        """The workers the service knows: ID, pool, slots, busy, connected, draining, runs, last pulse."""
        listed: list[Body] = await self._call("GET", "/v1/workers/status", namespaced=False)
        return listed

    # ------------------------------------------------------------------ transport

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Body | None = None,
        expect: int = 200,
        run_id: str | None = None,
        namespaced: bool = True,
    ) -> Any:
        async with self._request(method, path, query=query, body=body, namespaced=namespaced) as response:
            await self._check(response, expect=expect, run_id=run_id)
            return await response.json()

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Body | None = None,
        namespaced: bool = True,
    ) -> _Request:
        if self._http is None:
            raise RuntimeError("use 'async with ServiceApi(...)'")
        params = dict(query or {}) | ({"namespace": self.namespace} if self.namespace and namespaced else {})
        return _Request(self, self._http.request(method, self.url + path, params=params, json=body))

    async def _check(self, response: aiohttp.ClientResponse, *, expect: int, run_id: str | None) -> None:
        if response.status == expect:
            return
        why = _error_text(await response.text())
        location = self.location
        if response.status == 401:
            raise errors.CommandError(
                f"the service at {self.url} refused the token (401: {why}); check the token (from "
                f"{location.token_from})"
            )
        if response.status == 403:
            raise errors.CommandError(
                f"the service at {self.url} refused the token from {location.token_from} (403): {why}"
            )
        if response.status == 404 and run_id is not None:
            where = f" in namespace {self.namespace}" if self.namespace else ""
            raise errors.CommandError(f"no run {run_id}{where} (the service does not know it, or no longer)")
        if response.status == 404:
            raise errors.CommandError(
                f"{self.url} has no such route (404); check the URL (from {location.url_from}): it is the "
                "directive service's, e.g. http://127.0.0.1:7740"
            )
        raise errors.CommandError(f"the service at {self.url} refused ({response.status}): {why}")

    def unreachable(self, exc: BaseException) -> errors.CommandError:
        return errors.CommandError(
            f"cannot reach the workpath service at {self.url} ({exc}); check the URL (from "
            f"{self.location.url_from}) and that the service runs ('workpath dev MODULE' in local mode)"
        )


class _Request:
    """An ``async with`` request whose connection failures say which URL to check."""

    def __init__(self, api: ServiceApi, request: Any) -> None:
        self._api = api
        self._request = request

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            response: aiohttp.ClientResponse = await self._request.__aenter__()
        except (aiohttp.ClientConnectionError, aiohttp.InvalidURL, OSError) as exc:
            raise self._api.unreachable(exc) from None
        return response

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        await self._request.__aexit__(exc_type, exc, tb)


def _error_text(text: str) -> str:
    """The ``error`` of a JSON answer (with its problems), else the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if not isinstance(body, dict) or "error" not in body:
        return text.strip()[:500]
    problems = "; ".join(f"{p.get('field')}: {p.get('error')}" for p in body.get("problems") or ())
    return f"{body['error']}" + (f" ({problems})" if problems else "")
