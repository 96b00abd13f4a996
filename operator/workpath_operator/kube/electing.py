"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

Several operator replicas run; only the one holding the Lease serves (kopf, the directive
service, the WorkerPools). The others stand by, healthy and ready (:class:`StandbyProbes`):
readiness says a replica works, not that it leads, so that rollouts and PodDisruptionBudgets
count every replica. The Service finds the leader by a label on its pod instead, as Vault
and Patroni do (:class:`LeaderLabel`): the leader sets ``workpath.dev/leader: "true"`` on
its own pod after it takes the Lease and before it serves; every replica removes it from
its own pod when it starts (a restarted container keeps its pod and its labels) and when
it releases the Lease. A SIGKILLed leader's pod keeps the label but is not ready, so the
Service drops it all the same.

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
  over at its next look instead of after the lease duration; then the label goes.

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
#: The label the leader sets on its own pod (value ``"true"``); the chart's Service selects it.
LEADER_LABEL = "workpath.dev/leader"
#: The ReplicaSet removes the pods of lowest cost first: in a rollout or a scale-down the leader goes last, so that
#: the leadership moves once, to a pod of the new template, and not from one old pod to the other first.
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
LEADER_DELETION_COST = "1000"


class Leases(Protocol):
    """The Lease calls of :class:`~workpath_operator.kube.clients.KubernetesClient`."""

    async def get_lease(self, namespace: str, name: str) -> clients.Body: ...

    async def create_lease(self, namespace: str, body: clients.Body) -> clients.Body: ...

    async def replace_lease(self, namespace: str, name: str, body: clients.Body) -> clients.Body: ...


class Pods(Protocol):
    """The pod call of :class:`~workpath_operator.kube.clients.KubernetesClient`."""

    async def patch_pod(self, namespace: str, name: str, patch: clients.Body) -> clients.Body: ...


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


async def stand_by(elector: Elector, *, label: LeaderLabel, host: str, port: int) -> bool:
    """Answer the probes as a standby until this process leads (True), or until SIGTERM or SIGINT (False). It is
    ready once its pod carries no leader label (a container restarted in the leader's pod finds it there)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stopping.set)
    try:
        async with StandbyProbes(elector, host=host, port=port) as probes:
            acquiring = asyncio.create_task(
                _unlabel_then_acquire(elector, label, probes), name="workpath-lease-acquire"
            )
            stopped = asyncio.create_task(stopping.wait(), name="workpath-standby-stop")
            done, _ = await asyncio.wait({acquiring, stopped}, return_when=asyncio.FIRST_COMPLETED)
            await aiotasks.cancel_and_wait([acquiring, stopped])
            if acquiring in done:
                acquiring.result()  # the label refused for good (RBAC, no such pod), or a bug: let it out
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
    if stopping.is_set():
        await elector.release()
        logger.info("stopped while standing by")
        return False
    return elector.leading


async def _unlabel_then_acquire(elector: Elector, label: LeaderLabel, probes: StandbyProbes) -> None:
    await label.clear()
    probes.ready = True
    await elector.acquire()


class Leadership:
    """The Lease renewed beside the serving; :meth:`release` ends it (see :func:`leading`)."""

    def __init__(self, elector: Elector, *, label: LeaderLabel, on_lost: Callable[[], None]) -> None:
        self._elector = elector
        self._label = label
        self._on_lost = on_lost
        self._released = False
        self._keeping = asyncio.create_task(elector.keep(), name="workpath-lease-renew")
        self._keeping.add_done_callback(self._lost)

    async def release(self) -> None:
        """Stop renewing, release the Lease (a standby takes over at its next look), then take the leader label off
        this pod; the first call does. The Lease goes first: the label only routes workers, and this pod, stopping,
        is no longer ready anyway."""
        if self._released:
            return
        self._released = True
        self._keeping.remove_done_callback(self._lost)
        await aiotasks.cancel_and_wait([self._keeping])
        await self._elector.release()
        await self._label.clear_at_exit(timeout=self._elector.timing.renew_deadline)

    def _lost(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            self._on_lost()


@contextlib.asynccontextmanager
async def leading(elector: Elector, *, label: LeaderLabel, on_lost: Callable[[], None]) -> AsyncIterator[Leadership]:
    """Renew the Lease while the body runs, call ``on_lost`` the moment it is lost, release it at the end, or
    earlier with :meth:`Leadership.release`, as soon as nothing more will be written. The body starts once this
    pod carries the leader label, so that the Service sends workers here.

    ``on_lost`` must stop the serving at once: another replica may lead a moment later.
    """
    leadership = Leadership(elector, label=label, on_lost=on_lost)
    try:
        await label.mark()
        yield leadership
    finally:
        await leadership.release()


class LeaderLabel:
    """:data:`LEADER_LABEL` on this replica's own pod, ``pod`` (namespace, name; from the downward API), by which the
    Service selects the leader. Outside a pod (``pod`` None: tests run operators as processes) there is nothing to
    label, and each step is skipped with a log line."""

    def __init__(self, pods: Pods, *, pod: tuple[str, str] | None, retry_period: float) -> None:
        self.pod = pod
        self._pods = pods
        self._retry_period = retry_period

    async def mark(self) -> None:
        """Label this pod as the leader's, and make it the last its ReplicaSet removes; tries again while the API
        server fails (workers reach this replica only once it is done)."""
        marked = {"labels": {LEADER_LABEL: "true"}, "annotations": {DELETION_COST_ANNOTATION: LEADER_DELETION_COST}}
        await self._patch(marked, done="labelled as the leader's")

    async def clear(self) -> None:
        """Take the label and the cost off this pod; tries again while the API server fails (a standby must never
        carry it)."""
        cleared = {"labels": {LEADER_LABEL: None}, "annotations": {DELETION_COST_ANNOTATION: None}}
        await self._patch(cleared, done="carries no leader label")

    async def clear_at_exit(self, *, timeout: float) -> None:
        """:meth:`clear` within ``timeout``, or a warning: the process is ending, and its pod is no longer ready."""
        try:
            async with asyncio.timeout(timeout):
                await self.clear()
        except (clients.ApiError, TimeoutError) as exc:
            logger.warning("could not take the leader label off pod %s (it is not ready any more): %s", self.pod, exc)

    async def _patch(self, metadata: clients.Body, *, done: str) -> None:
        if self.pod is None:
            logger.info("not in a pod (no $POD_NAME and $POD_NAMESPACE): no leader label to set or remove")
            return
        namespace, name = self.pod
        while True:
            try:
                await self._pods.patch_pod(namespace, name, {"metadata": metadata})
            except clients.ApiError as exc:
                if not exc.transient:
                    raise
                logger.warning("pod %s/%s: %s; trying again", namespace, name, exc)
                await asyncio.sleep(self._retry_period)
                continue
            logger.info("pod %s/%s %s", namespace, name, done)
            return


class StandbyProbes:
    """``/healthz`` and ``/readyz`` on the directive service's address while this replica stands by: alive at once,
    ready once :attr:`ready` (its pod carries no leader label)."""

    def __init__(self, elector: Elector, *, host: str, port: int) -> None:
        self.ready = False
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
        if not self.ready:
            return web.Response(status=503, text="removing the leader label from this pod\n")
        holder = self._elector.holder or "nobody yet"
        return web.Response(text=f"standing by: {holder} leads\n")


def _spec(lease: clients.Body) -> dict[str, Any]:
    spec: dict[str, Any] = lease.get("spec") or {}
    return spec


def _micro_time() -> str:
    """Now as a Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
