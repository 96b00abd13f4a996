"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

Several operator replicas run; only the one holding the Lease serves (kopf, the directive
service, the WorkerPools). The others stand by: they answer ``/healthz`` but not
``/readyz`` (:class:`StandbyProbes`), so the Service sends workers to the leader only.

- **Acquire** (:meth:`Elector.acquire`): every retry period, read the Lease; take it when
  it does not exist, when nobody holds it (a leader released it), or when its record has
  not changed for the lease duration *as this process observed it* (its own monotonic
  clock from when it saw the record change, never the writer's timestamps: clocks of two
  nodes may disagree). Every write names the ``resourceVersion`` read, so of two standbys
  racing for it one wins and the other is answered 409.
- **Renew** (:meth:`Elector.keep`): every retry period. A leader that could not renew for
  the renew deadline (or finds another holder) has lost the Lease and returns; the caller
  stops serving at once (the operator exits, as controller-runtime does). The renew
  deadline is under the lease duration, so the old leader has stopped before a standby
  can judge the Lease expired: its clock started no earlier than the leader's last renewal.
- **Release** (:meth:`Elector.release`): at a graceful shutdown, after the operator stopped
  writing, the holder is cleared (as client-go's ``ReleaseOnCancel``) so a standby takes
  over at its next look instead of after the lease duration.

Time is the event loop's clock, so that the tests run the state machine on a fake one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, Self

from aiohttp import web

from workpath_operator.kube import clients
from workpath_operator.service import aiotasks

logger = logging.getLogger("workpath.electing")

LEASE_API_VERSION = "coordination.k8s.io/v1"


class Leases(Protocol):
    """The Lease calls of :class:`~workpath_operator.kube.clients.KubernetesClient`."""

    async def get_lease(self, namespace: str, name: str) -> clients.Body: ...

    async def create_lease(self, namespace: str, body: clients.Body) -> clients.Body: ...

    async def replace_lease(self, namespace: str, name: str, body: clients.Body) -> clients.Body: ...


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long a Lease lasts unrenewed, how long a leader keeps trying to renew, how often anyone looks."""

    lease_duration: float
    renew_deadline: float
    retry_period: float


class Elector:
    """One candidate for the Lease ``namespace/name``, named ``identity``."""

    def __init__(self, leases: Leases, *, namespace: str, name: str, identity: str, timing: Timing) -> None:
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self._leases = leases
        #: The last record read or written, and when (loop time) this process saw it change.
        self._record: clients.Body = {}
        self._observed_at = 0.0
        #: When (loop time) the last successful acquire or renew was sent; None when not holding the Lease.
        self._renewed_at: float | None = None

    @property
    def leading(self) -> bool:
        return self._renewed_at is not None

    @property
    def holder(self) -> str:
        """Who holds the Lease as last seen; empty when nobody does."""
        return str(_spec(self._record).get("holderIdentity") or "")

    async def acquire(self) -> None:
        """Return once this process holds the Lease (trying every retry period)."""
        loop = asyncio.get_running_loop()
        seen = None
        while True:
            sent = loop.time()
            if await self._attempt(timeout=self.timing.renew_deadline, renewing=False):
                self._renewed_at = sent
                logger.info("leading: holding Lease %s/%s as %s", self.namespace, self.name, self.identity)
                return
            if self.holder != seen:
                seen = self.holder
                logger.info("standing by: %s holds Lease %s/%s", seen or "nobody", self.namespace, self.name)
            await asyncio.sleep(self.timing.retry_period)

    async def keep(self) -> None:
        """Renew the Lease every retry period; return when it is lost (not renewed within the renew deadline,
        or held by another)."""
        loop = asyncio.get_running_loop()
        while self._renewed_at is not None:
            deadline = self._renewed_at + self.timing.renew_deadline
            await asyncio.sleep(max(0.0, min(self.timing.retry_period, deadline - loop.time())))
            sent = loop.time()
            if sent >= deadline:
                logger.error("lost Lease %s/%s: not renewed for %.1f s", self.namespace, self.name, sent - deadline)
                break
            if await self._attempt(timeout=deadline - sent, renewing=True):
                self._renewed_at = sent
            elif self.holder != self.identity:
                logger.error("lost Lease %s/%s: %s holds it now", self.namespace, self.name, self.holder or "nobody")
                break
        self._renewed_at = None

    async def release(self) -> None:
        """Clear the holder (if this process still holds the Lease), so that a standby takes over at once."""
        if self._renewed_at is None:
            return
        self._renewed_at = None
        try:
            async with asyncio.timeout(self.timing.renew_deadline):
                lease = await self._leases.get_lease(self.namespace, self.name)
                spec = _spec(lease)
                if spec.get("holderIdentity") != self.identity:
                    return
                now = _micro_time()
                released = {k: v for k, v in spec.items() if k != "holderIdentity"}
                released |= {"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now}
                await self._leases.replace_lease(self.namespace, self.name, lease | {"spec": released})
        except (clients.ApiError, TimeoutError) as exc:
            logger.warning("could not release Lease %s/%s (it expires by itself): %s", self.namespace, self.name, exc)
            return
        logger.info("released Lease %s/%s", self.namespace, self.name)

    async def _attempt(self, *, timeout: float, renewing: bool) -> bool:
        """One try to acquire or renew; False when another holds the Lease, when a write raced ours, or when
        the API server failed or did not answer within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                return await self._acquire_or_renew(renewing=renewing)
        except clients.ApiError as exc:
            if exc.status != 409:
                logger.warning("Lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        except TimeoutError:
            logger.warning("Lease %s/%s: no answer within %.1f s", self.namespace, self.name, timeout)
            return False

    async def _acquire_or_renew(self, *, renewing: bool) -> bool:
        """Take or renew the Lease. A leader never takes it back from another holder: that one took over, so
        this one has lost it, whatever its clock says."""
        now = _micro_time()
        try:
            lease = await self._leases.get_lease(self.namespace, self.name)
        except clients.ApiError as exc:
            if exc.status != 404:
                raise
            self._observe(await self._leases.create_lease(self.namespace, self._new_lease(now)))
            return True
        self._observe(lease)
        spec = _spec(lease)
        holder = spec.get("holderIdentity") or ""
        if holder != self.identity and (renewing or (holder and not self._expired(spec))):
            return False
        if holder != self.identity:
            spec = spec | {"acquireTime": now, "leaseTransitions": int(spec.get("leaseTransitions") or 0) + 1}
        spec = spec | {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.timing.lease_duration),
            "renewTime": now,
        }
        self._observe(await self._leases.replace_lease(self.namespace, self.name, lease | {"spec": spec}))
        return True

    def _new_lease(self, now: str) -> clients.Body:
        return {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": math.ceil(self.timing.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _observe(self, lease: clients.Body) -> None:
        """Remember the record; a changed one (another resourceVersion) starts its lease duration now."""
        version = (lease.get("metadata") or {}).get("resourceVersion")
        if version is None or version != (self._record.get("metadata") or {}).get("resourceVersion"):
            self._observed_at = asyncio.get_running_loop().time()
        self._record = lease

    def _expired(self, spec: dict[str, Any]) -> bool:
        """Whether the holder let the Lease run out: unchanged for its duration since this process saw it."""
        duration = spec.get("leaseDurationSeconds") or self.timing.lease_duration
        return asyncio.get_running_loop().time() >= self._observed_at + float(duration)


async def stand_by(elector: Elector, *, host: str, port: int) -> bool:
    """Answer the probes as a standby until this process leads (True), or until SIGTERM or SIGINT (False)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stopping.set)
    try:
        async with StandbyProbes(elector, host=host, port=port):
            acquiring = asyncio.create_task(elector.acquire(), name="workpath-lease-acquire")
            stopped = asyncio.create_task(stopping.wait(), name="workpath-standby-stop")
            done, _ = await asyncio.wait({acquiring, stopped}, return_when=asyncio.FIRST_COMPLETED)
            await aiotasks.cancel_and_wait([acquiring, stopped])
            if acquiring in done:
                acquiring.result()  # a failure other than the API server's is a bug: let it out
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
    if stopping.is_set():
        await elector.release()
        logger.info("stopped while standing by")
        return False
    return elector.leading


class Leadership:
    """The Lease renewed beside the serving; :meth:`release` ends it (see :func:`leading`)."""

    def __init__(self, elector: Elector, *, on_lost: Callable[[], None]) -> None:
        self._elector = elector
        self._on_lost = on_lost
        self._keeping = asyncio.create_task(elector.keep(), name="workpath-lease-renew")
        self._keeping.add_done_callback(self._lost)

    async def release(self) -> None:
        """Stop renewing and release the Lease (the first call does): a standby takes over at its next look."""
        self._keeping.remove_done_callback(self._lost)
        await aiotasks.cancel_and_wait([self._keeping])
        await self._elector.release()

    def _lost(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._on_lost()


@contextlib.asynccontextmanager
async def leading(elector: Elector, *, on_lost: Callable[[], None]) -> AsyncIterator[Leadership]:
    """Renew the Lease while the body runs, call ``on_lost`` the moment it is lost, release it at the end, or
    earlier with :meth:`Leadership.release`, as soon as nothing more will be written.

    ``on_lost`` must stop the serving at once: another replica may lead a moment later.
    """
    leadership = Leadership(elector, on_lost=on_lost)
    try:
        yield leadership
    finally:
        await leadership.release()


class StandbyProbes:
    """``/healthz`` 200 and ``/readyz`` 503 on the directive service's address while this replica stands by."""

    def __init__(self, elector: Elector, *, host: str, port: int) -> None:
        self._elector = elector
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._readiness)
        self._app = app

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readiness(self, request: web.Request) -> web.Response:
        holder = self._elector.holder or "nobody yet"
        return web.Response(status=503, text=f"standing by: {holder} leads\n")


def _spec(lease: clients.Body) -> dict[str, Any]:
    spec: dict[str, Any] = lease.get("spec") or {}
    return spec


def _micro_time() -> str:
    """Now as a Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
