"""Routines and their Events as kubectl shows them: read (and deleted) straight from the API server, with the
kubeconfig's credentials (in-cluster in a pod), so that what a command shows is what RBAC lets its user see.

Every API error becomes a :class:`~workpath_operator.commands.errors.CommandError` that names what to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from workpath_operator.commands import errors, locating
from workpath_operator.kube import clients, resources

Body = dict[str, Any]


class Routines:
    """The Routines of a cluster and their Events; open one with :meth:`open`."""

    def __init__(self, client: clients.KubernetesClient) -> None:
        self._client = client

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls) -> AsyncIterator[Routines]:
        with _explained("read your credentials"):
            configuration = await clients.load_configuration()
        async with clients.KubernetesClient(configuration) as client:
            yield cls(client)

    async def listed(self, namespace: str | None, *, selector: str | None = None) -> list[Body]:
        """The Routines of ``namespace`` (every one if None) that ``selector`` (a label selector) picks."""
        path = f"{clients.ROUTINES_API}/routines" if namespace is None else f"{_namespaced(namespace)}/routines"
        query = {"labelSelector": selector} if selector else {}
        with _explained(f"list Routines{_in(namespace)}"):
            listing = await self._client.request("GET", path, query=query)
        items: list[Body] = listing.get("items") or []
        return sorted(items, key=lambda body: (body["metadata"]["namespace"], body["metadata"]["name"]))

    async def find(self, namespace: str | None, name_or_run_id: str) -> Body:
        """The Routine named so in ``namespace``, or whose run it is (by run ID, in every namespace if None)."""
        if locating.is_run_id(name_or_run_id):
            return await self._by_run_id(namespace, name_or_run_id)
        if namespace is None:
            raise errors.CommandError(
                f"a Routine is found by name in one namespace: pass -n NAMESPACE with {name_or_run_id}, not -A "
                "(or give its run ID)",
                code=errors.EXIT_USAGE,
            )
        missing = f"no Routine {name_or_run_id} in namespace {namespace}"
        with _explained(f"get Routine {name_or_run_id}{_in(namespace)}", missing=missing):
            return await self._client.get_routine(namespace, name_or_run_id)

    async def _by_run_id(self, namespace: str | None, run_id: str) -> Body:
        """A child's run ID is its run-id label; a top-level Routine's is its uid."""
        children = await self.listed(namespace, selector=f"{resources.RUN_ID_LABEL}={run_id}")
        if children:
            return children[0]
        for body in await self.listed(namespace):
            if body["metadata"].get("uid") == run_id:
                return body
        raise errors.CommandError(f"no Routine has run ID {run_id}{_in(namespace)}")

    async def events(self, body: Body) -> list[Body]:
        """The Events about the Routine ``body``, oldest first."""
        metadata = body["metadata"]
        path = f"/api/v1/namespaces/{quote(metadata['namespace'], safe='')}/events"
        query = {"fieldSelector": f"involvedObject.uid={metadata['uid']}"}
        with _explained(f"list Events{_in(metadata['namespace'])}"):
            listing = await self._client.request("GET", path, query=query)
        items: list[Body] = listing.get("items") or []
        return sorted(items, key=event_time)

    async def delete(self, body: Body) -> None:
        """Delete the Routine (if it is still that object): the operator cancels its run."""
        metadata = body["metadata"]
        with _explained(f"delete Routine {metadata['name']}{_in(metadata['namespace'])}"):
            await self._client.delete_routine(metadata["namespace"], metadata["name"], uid=metadata["uid"])


def event_time(event: Body) -> str:
    """When an Event last happened (RFC 3339 strings sort as times)."""
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


@contextlib.contextmanager
def _explained(doing: str, *, missing: str | None = None) -> Iterator[None]:
    """Turn the API server's refusals into errors that say what to fix; 404 says ``missing`` when given."""
    try:
        yield
    except clients.ApiError as exc:
        message = missing if exc.status == 404 and missing else _explain(exc, doing)
        raise errors.CommandError(message) from exc


def _explain(exc: clients.ApiError, doing: str) -> str:
    if exc.status == 0:
        return f"cannot {doing}: {exc.message}"
    if exc.status == 401:
        return f"the API server refused your credentials (401) to {doing}: check your kubeconfig's user and token"
    if exc.status == 403:
        return f"the API server forbids you to {doing} (403): {exc.message}"
    if exc.status == 404:
        return f"cannot {doing}: the API server has no Routines (404); is workpath's CRD installed?"
    return f"cannot {doing}: the API server answered {exc.status} {exc.reason}: {exc.message}"


def _namespaced(namespace: str) -> str:
    return f"{clients.ROUTINES_API}/namespaces/{quote(namespace, safe='')}"


def _in(namespace: str | None) -> str:
    return f" in namespace {namespace}" if namespace else " in any namespace"
