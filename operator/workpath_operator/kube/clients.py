"""The few Kubernetes API calls the operator makes itself, on one HTTP session.

kopf watches the Routines; everything the operator *writes* (status patches, child
Routines, deletions, Events, the leader's Lease and its pod's label), its TokenReviews and
SubjectAccessReviews go through :class:`KubernetesClient`: plain JSON over one aiohttp session, no generated models,
because those calls are on the hot path and a model layer costs CPU per call.

Credentials come from kubernetes_asyncio's loaders: in-cluster (the pod's
ServiceAccount, its token re-read as it rotates) or a kubeconfig (``$KUBECONFIG``).
kopf logs in with the same credentials (:func:`connection_info`).
"""

from __future__ import annotations

import json
import logging
import ssl
import types
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import kubernetes_asyncio.client
import kubernetes_asyncio.config

from workpath import errors
from workpath.clients import apiservers

logger = logging.getLogger("workpath.kubernetes")

Body = dict[str, Any]

ROUTINES_API = "/apis/workpath.dev/v1alpha1"
LEASES_API = "/apis/coordination.k8s.io/v1"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
#: HTTP statuses worth trying again (0: no answer at all).
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})


class ApiError(errors.WorkpathError):
    """The API server refused a request (``status`` is its HTTP status), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str, *, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed later."""
        return self.status in TRANSIENT_STATUSES


async def load_configuration() -> kubernetes_asyncio.client.Configuration:
    """The in-cluster configuration when running in a pod, else the kubeconfig's current context."""
    configuration = kubernetes_asyncio.client.Configuration()
    try:
        kubernetes_asyncio.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes_asyncio.config.ConfigException:
        try:
            await kubernetes_asyncio.config.load_kube_config(client_configuration=configuration)
        except (kubernetes_asyncio.config.ConfigException, OSError) as exc:
            raise ApiError(
                0,
                "NoCredentials",
                f"not in a pod and no usable kubeconfig ($KUBECONFIG or ~/.kube/config): {exc}",
                method="LOGIN",
                path="-",
            ) from exc
    return configuration


async def authorization(configuration: kubernetes_asyncio.client.Configuration) -> str | None:
    """The ``Authorization`` header value, refreshed first when the token rotates."""
    header: str | None = await configuration.get_api_key_with_prefix("BearerToken")
    if header:
        return header
    if configuration.username or configuration.password:
        return str(configuration.get_basic_auth_token())
    return None


class KubernetesClient:
    """JSON requests to the API server. Use as ``async with KubernetesClient(configuration) as client``."""

    def __init__(self, configuration: kubernetes_asyncio.client.Configuration, *, timeout: float = 30.0) -> None:
        self.configuration = configuration
        self.server = str(configuration.host).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        context = ssl.create_default_context(cafile=self.configuration.ssl_ca_cert)
        if self.configuration.cert_file:
            context.load_cert_chain(self.configuration.cert_file, keyfile=self.configuration.key_file)
        if not self.configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=100),
            timeout=self._timeout,
            json_serialize=_dumps,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ Routines

    async def list_routines(self, namespace: str | None, *, page: int = 500) -> list[Body]:
        """Every Routine of ``namespace`` (of all namespaces if None), read in pages."""
        path = f"{ROUTINES_API}/routines" if namespace is None else f"{_namespaced(namespace)}/routines"
        items: list[Body] = []
        token: str | None = None
        while True:
            query = {"limit": str(page)} | ({"continue": token} if token else {})
            listing = await self.request("GET", path, query=query)
            items.extend(listing.get("items") or [])
            token = (listing.get("metadata") or {}).get("continue")
            if not token:
                return items

    async def get_routine(self, namespace: str, name: str) -> Body:
        return await self.request("GET", _routine(namespace, name))

    async def create_routine(self, namespace: str, body: Body) -> Body:
        return await self.request("POST", f"{_namespaced(namespace)}/routines", body=body)

    async def replace_routine_status(self, namespace: str, name: str, status: Body) -> None:
        """Set the Routine's whole ``status`` (a JSON patch through the status subresource)."""
        patch = [{"op": "add", "path": "/status", "value": status}]
        await self.request("PATCH", f"{_routine(namespace, name)}/status", body=patch, content_type=JSON_PATCH)

    async def delete_routine(self, namespace: str, name: str, *, uid: str) -> None:
        """Delete the Routine ``name`` if it is still the object ``uid`` (not one re-created with its name)."""
        options = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        await self.request("DELETE", _routine(namespace, name), body=options)

    # ------------------------------------------------------------------ others

    async def create_event(self, namespace: str, event: Body) -> None:
        await self.request("POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/events", body=event)

    async def review_token(self, token: str, *, audiences: Sequence[str]) -> Body:
        """The ``status`` of a TokenReview of ``token`` for ``audiences``."""
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": list(audiences)},
        }
        answer = await self.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=review)
        status: Body = answer.get("status") or {}
        return status

    async def review_access(self, spec: Body) -> Body:
        """The ``status`` of a SubjectAccessReview (``allowed``, ``denied``, ``reason``) of ``spec``: whether a
        user (``user``, ``uid``, ``groups``, ``extra``) may do ``resourceAttributes`` (verb, group, resource,
        namespace)."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        answer = await self.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review)
        status: Body = answer.get("status") or {}
        return status

    # ------------------------------------------------------------------ the leader's Lease

    async def get_lease(self, namespace: str, name: str) -> Body:
        return await self.request("GET", _lease(namespace, name))

    async def create_lease(self, namespace: str, body: Body) -> Body:
        return await self.request("POST", f"{LEASES_API}/namespaces/{quote(namespace, safe='')}/leases", body=body)

    async def replace_lease(self, namespace: str, name: str, body: Body) -> Body:
        """Write the whole Lease; answered 409 if it changed since ``body``'s ``metadata.resourceVersion``."""
        return await self.request("PUT", _lease(namespace, name), body=body)

    async def patch_pod(self, namespace: str, name: str, patch: Body) -> Body:
        """Merge ``patch`` into the pod (a JSON merge patch: a ``None`` value removes its key)."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    # ------------------------------------------------------------------ transport

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Body:
        """One request; the decoded JSON answer, or :class:`ApiError`."""
        if self._session is None:
            raise RuntimeError("the client is not open: use 'async with KubernetesClient(...)'")
        headers = {"Accept": "application/json"}
        auth = await authorization(self.configuration)
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = _dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            async with self._session.request(
                method, self.server + path, params=query, data=data, headers=headers
            ) as response:
                payload = await response.read()
                status = response.status
                reason = response.reason or ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, "Unavailable", str(exc) or type(exc).__name__, method=method, path=path) from exc
        if status >= 400:
            message, why = apiservers.status_failure(payload)
            raise ApiError(status, why or reason, message, method=method, path=path)
        if not payload:
            return {}
        decoded: Body = json.loads(payload)
        return decoded


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _namespaced(namespace: str) -> str:
    return f"{ROUTINES_API}/namespaces/{quote(namespace, safe='')}"


def _routine(namespace: str, name: str) -> str:
    return f"{_namespaced(namespace)}/routines/{quote(name, safe='')}"


def _lease(namespace: str, name: str) -> str:
    return f"{LEASES_API}/namespaces/{quote(namespace, safe='')}/leases/{quote(name, safe='')}"
