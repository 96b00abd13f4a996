"""The kopf side of the operator: a registry with its handlers, and kopf's settings.

Handlers stay thin. The startup and cleanup handlers start and stop the directive
service (see :mod:`~workpath_operator.kube.operating`); every Routine watch event goes to
:class:`Served`'s ``observe``, every event of a worker pod (``workpath.dev/worker``) to its
``observe_worker_pod``. Only a watching handler (``@kopf.on.event``) is registered
for Routines, on purpose: kopf then keeps no diff-base or progress annotations and adds
no finalizer, so it never writes to a Routine. Every write per Routine counts when
thousands are created per minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import kopf
import kubernetes_asyncio.client

from workpath_operator.kube import clients, pools, resources, worker_pods


class Served(Protocol):
    """What kopf drives: started before the watching, stopped after it, told of every Routine event."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None: ...

    def observe_worker_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None: ...


class Pooled(Protocol):
    """The WorkerPool controller's side: told of every WorkerPool, and of its Deployments and pods."""

    def observe_pool(self, event_type: str | None, body: Mapping[str, Any]) -> None: ...

    def observe_deployment(self, event_type: str | None, body: Mapping[str, Any]) -> None: ...

    def observe_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None: ...


def registry(
    served: Served, *, configuration: kubernetes_asyncio.client.Configuration, pooled: Pooled | None = None
) -> kopf.OperatorRegistry:
    """A registry of its own (not kopf's global one) with the login, lifecycle and Routine handlers, and the
    WorkerPool, Deployment and pod handlers when ``pooled`` is given (the operator runs worker pools)."""
    handlers = kopf.OperatorRegistry()

    @kopf.on.login(registry=handlers)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        """kopf uses the credentials the operator's own client uses."""
        return await connection_info(configuration)

    @kopf.on.startup(registry=handlers, errors=kopf.ErrorsMode.PERMANENT)
    async def start(**_: Any) -> None:
        await served.start()

    @kopf.on.cleanup(registry=handlers)
    async def stop(**_: Any) -> None:
        await served.stop()

    @kopf.on.event(resources.GROUP, resources.VERSION, resources.PLURAL, registry=handlers)
    async def routine_event(event: kopf.RawEvent, **_: Any) -> None:
        served.observe(event["type"], event["object"])

    # The same watch of pods as the pools' (kopf watches a resource once and filters for each handler).
    @kopf.on.event("", "v1", "pods", labels={worker_pods.WORKER_LABEL: kopf.PRESENT}, registry=handlers)
    async def worker_pod_event(event: kopf.RawEvent, **_: Any) -> None:
        served.observe_worker_pod(event["type"], event["object"])

    if pooled is not None:
        _watch_pools(handlers, pooled)
    return handlers


def _watch_pools(handlers: kopf.OperatorRegistry, pooled: Pooled) -> None:
    """WorkerPools, and the Deployments and pods that carry a pool's label (only those: a label selector)."""
    labelled = {pools.POOL_LABEL: kopf.PRESENT}

    @kopf.on.event(pools.GROUP, pools.VERSION, pools.PLURAL, registry=handlers)
    async def pool_event(event: kopf.RawEvent, **_: Any) -> None:
        pooled.observe_pool(event["type"], event["object"])

    @kopf.on.event("apps", "v1", "deployments", labels=labelled, registry=handlers)
    async def deployment_event(event: kopf.RawEvent, **_: Any) -> None:
        pooled.observe_deployment(event["type"], event["object"])

    @kopf.on.event("", "v1", "pods", labels=labelled, registry=handlers)
    async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        pooled.observe_pod(event["type"], event["object"])


def settings() -> kopf.OperatorSettings:
    """kopf's settings: watch Routines, write nothing on its own, and be quiet about it."""
    kopf_settings = kopf.OperatorSettings()
    # No watching of CRDs and namespaces: the namespaces are given, the CRD is installed with the chart.
    # Fewer requests, and RBAC need not allow listing CRDs or namespaces.
    kopf_settings.scanning.disabled = True
    # Events are posted by the operator itself, within a budget (see recording.py).
    kopf_settings.posting.enabled = False
    # A per-Routine worker task lingers this long after its last event; Routines come in bursts.
    kopf_settings.queueing.idle_timeout = 1.0
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.client_timeout = 330
    kopf_settings.watching.connect_timeout = 10
    kopf_settings.networking.request_timeout = 30
    return kopf_settings


async def connection_info(configuration: kubernetes_asyncio.client.Configuration) -> kopf.ConnectionInfo:
    header = await clients.authorization(configuration)
    scheme, _, token = (header or "").partition(" ")
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )
