"""The Kubernetes API server as the cluster target sees it: credentials, JSON requests and watch streams.

Credentials are loaded the standard way, by ``kubernetes_asyncio`` (the ``cluster`` extra, imported only here and
only when a cluster target is made): in a pod, its ServiceAccount (the token re-read as it rotates); elsewhere,
or when a kubeconfig or context is named, the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``; tokens, client
certificates, exec plugins). The calls themselves are plain JSON over one aiohttp session, as the operator makes
its own: the client needs five of them, not the generated API.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import ssl
import types
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from workpath import errors

Body = dict[str, Any]

#: What to install when ``kubernetes_asyncio`` is missing.
EXTRA = "pip install 'workpath[cluster]'"
DEFAULT_NAMESPACE = "default"
POD_NAMESPACE_FILE = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ApiError(errors.ClientError):
    """The API server refused a request (``status`` is its HTTP status), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str, *, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Who the client is to the API server, and where that came from (for errors that say what to fix)."""

    server: str
    #: The kubeconfig context's namespace, or the pod's, else ``default`` (as kubectl picks it).
    namespace: str
    #: ``in-cluster (ServiceAccount)`` or ``kubeconfig PATH, context NAME``.
    source: str
    #: A ``kubernetes_asyncio.client.Configuration``: it refreshes tokens (rotating files, exec plugins).
    configuration: Any

    async def authorization(self) -> str | None:
        """The ``Authorization`` header's value now (refreshed first when the token rotates), if any."""
        configuration = self.configuration
        header: str | None = await configuration.get_api_key_with_prefix("BearerToken")
        if header:
            return header
        if configuration.username or configuration.password:
            return str(configuration.get_basic_auth_token())
        return None

    def ssl_context(self) -> ssl.SSLContext:
        configuration = self.configuration
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def kubernetes() -> tuple[types.ModuleType, types.ModuleType]:
    """``kubernetes_asyncio.client`` and ``.config``, imported now; a :class:`~workpath.errors.ClientError` naming
    the extra to install when they are missing."""
    try:
        import kubernetes_asyncio.client
        import kubernetes_asyncio.config
    except ImportError as exc:
        raise errors.ClientError(
            f"a cluster target reads Kubernetes credentials with kubernetes_asyncio, which is not installed ({exc}): "
            f"{EXTRA}"
        ) from None
    return kubernetes_asyncio.client, kubernetes_asyncio.config


async def load(*, kubeconfig: str | os.PathLike[str] | None, context: str | None) -> Credentials:
    """The pod's ServiceAccount when in a pod and neither ``kubeconfig`` nor ``context`` is named, else the
    kubeconfig's (``context``, or its current one)."""
    client, config = kubernetes()
    configuration = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            pass
        else:
            return Credentials(
                server=str(configuration.host).rstrip("/"),
                namespace=_pod_namespace(),
                source="in-cluster (the pod's ServiceAccount)",
                configuration=configuration,
            )
    path = str(kubeconfig) if kubeconfig is not None else os.environ.get("KUBECONFIG") or "~/.kube/config"
    try:
        loader = await config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig is not None else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (config.ConfigException, OSError, ValueError, KeyError) as exc:
        raise errors.ClientError(
            f"no usable Kubernetes credentials: not in a pod, and the kubeconfig {path}"
            f"{f' (context {context})' if context else ''} cannot be used: {exc}; give kubeconfig= (and context=), "
            "or set $KUBECONFIG"
        ) from None
    current = (loader.current_context or {}) if loader is not None else {}
    return Credentials(
        server=str(configuration.host).rstrip("/"),
        namespace=str((current.get("context") or {}).get("namespace") or DEFAULT_NAMESPACE),
        source=f"kubeconfig {path}, context {current.get('name') or context or '?'}",
        configuration=configuration,
    )


def _pod_namespace() -> str:
    try:
        return POD_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


class ApiServer:
    """JSON requests and watch streams to the API server, on one aiohttp session (:meth:`open`, :meth:`close`)."""

    def __init__(self, credentials: Credentials, *, timeout: float = 30.0) -> None:
        self.credentials = credentials
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.credentials.ssl_context(), limit=100),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, *, body: object = None, query: Mapping[str, str] | None = None
    ) -> Body:
        """One request; the decoded JSON answer, or :class:`ApiError`."""
        async with self._call(method, path, body=body, query=query) as response:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiError(0, "Unavailable", str(exc) or type(exc).__name__, method=method, path=path) from None
        if not payload:
            return {}
        decoded: Body = json.loads(payload)
        return decoded

    async def stream(self, path: str, *, query: Mapping[str, str], idle: float) -> AsyncIterator[Body]:
        """The JSON lines of a watch on ``path`` until the server ends it; :class:`ApiError` if nothing comes for
        ``idle`` seconds (bookmarks come every minute or so) or the connection breaks."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=idle)
        async with self._call("GET", path, query=query, timeout=timeout) as response:
            pending = b""
            try:
                async for chunk in response.content.iter_any():  # not readline: a line may be one large Routine
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ApiError(0, "Unavailable", str(exc) or type(exc).__name__, method="WATCH", path=path) from None

    @contextlib.asynccontextmanager
    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response of one request, once its status is known to be a success; :class:`ApiError` if not."""
        if self._session is None:
            raise errors.ClientError("the client is not open: use 'async with client:' or 'await client.open()'")
        headers = {"Accept": "application/json"}
        auth = await self.credentials.authorization()
        if auth:
            headers["Authorization"] = auth
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            response = await self._session.request(
                method, self.credentials.server + path, params=query, data=data, headers=headers, **options
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, "Unavailable", str(exc) or type(exc).__name__, method=method, path=path) from None
        try:
            if response.status >= 400:
                try:
                    payload = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    payload = b""
                message, reason = status_failure(payload)
                raise ApiError(response.status, reason or response.reason or "", message, method=method, path=path)
            yield response
        finally:
            response.release()


def status_failure(payload: bytes) -> tuple[str, str]:
    """The message and reason of a Kubernetes ``Status`` answer, or the raw text (the operator's client uses it too)."""
    try:
        status = json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")[:500], ""
    if not isinstance(status, dict):
        return str(status)[:500], ""
    return str(status.get("message", "")), str(status.get("reason", ""))
