"""The WorkerPool controller: one Deployment per pool, sized from the queue, scaled down idle-first.

Level-triggered. Every signal only marks a pool dirty in a coalescing queue (at most one reconcile in flight per
pool): a WorkerPool, its Deployment or one of its pods changed (watch events), or the pool's queue changed (the
service calls :meth:`PoolController.demand_changed` whenever a run that counts toward the pool is queued or
leaves the queue). A reconcile then compares what is with what should be, from the latest state it has seen:

1. the Deployment exists and is the one :func:`pools.render_deployment` gives (created if missing, the pod
   template re-applied if the spec changed or someone edited it; owned by the pool, so it goes with it);
2. replicas follow :class:`scaling.Scaler`: up at once (push scale-from-zero: the first queued run of a pool at
   zero replicas is one reconcile away from a replicas patch), down only after the scale-down delay;
3. a scale-down removes idle workers only: the chosen workers are cordoned (the service gives them no new run),
   every pod gets a ``controller.kubernetes.io/pod-deletion-cost`` (chosen ones lowest, busy ones by their busy
   slots), and only once the pods show their costs are the replicas patched, so the ReplicaSet removes exactly
   the chosen pods. With too few idle workers it scales down by the idle ones and comes back for the rest;
4. the pool's status (replicas, ready, desired, connected workers, busy slots, queued, running, last scale time,
   conditions) is written when it changed, and an Event says each scaling decision with its numbers.

The controller holds no state that a restart loses: the Deployment's replicas and the pods' costs are in the
cluster, and the scaler's window starts again (a restart can delay a scale-down, never cause one early).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from workpath_operator.kube import clients, coalescing, pool_statuses, pools, recording
from workpath_operator.service import measures, scaling

logger = logging.getLogger("workpath.pools")

Body = Mapping[str, Any]
Key = tuple[str, str]
"""A pool: (namespace, name)."""

LINGER = 0.02
"""Seconds a pool's first change waits before its reconcile, so that a burst of queued runs is one decision."""
COST_VISIBLE_TIMEOUT = 5.0
"""Seconds to wait for the pods to show their new deletion costs before the replicas are patched."""
MERGE_PATCH = "application/merge-patch+json"


class Fleet(Protocol):
    """What the controller needs of the directive service."""

    def declare_pools(self, patterns: Mapping[str, Iterable[str]]) -> None:
        """The pools that exist (name -> routine patterns): which pool each queued run counts toward."""

    def pool_demand(self, pool: str) -> scaling.Demand:
        """Runs queued for ``pool`` and slots its connected workers hold."""

    def pool_workers(self, pool: str) -> Mapping[str, tuple[int, bool]]:
        """The workers of ``pool`` the service knows, by worker ID (the pod's name): (busy slots, connected)."""

    def cordon(self, worker_id: str, *, cordoned: bool) -> None:
        """Give the worker no new runs (or again)."""


@dataclasses.dataclass(slots=True)
class _Pool:
    """What the controller knows of one WorkerPool."""

    body: Body
    spec: pools.PoolSpec | None
    invalid: str | None
    scaler: scaling.Scaler
    deployment: Body | None = None
    pods: dict[str, Body] = dataclasses.field(default_factory=dict)
    replicas: int | None = None
    """The replicas the controller last set (or saw), ahead of the watch."""
    cordoned: set[str] = dataclasses.field(default_factory=set)
    last_scale: datetime.datetime | None = None
    status: Body | None = None
    reported_invalid: str | None = None
    recheck: asyncio.TimerHandle | None = None


class PoolController:
    """Reconciles every WorkerPool it is told of; see the module docstring."""

    def __init__(
        self,
        client: clients.KubernetesClient,
        *,
        fleet: Fleet,
        recorder: recording.EventRecorder,
        connection: pools.WorkerConnection,
        writers: int = 4,
    ) -> None:
        self._client = client
        self._fleet = fleet
        self._recorder = recorder
        self._connection = connection
        self._pools: dict[Key, _Pool] = {}
        self._by_name: dict[str, set[Key]] = {}
        self._queue: coalescing.CoalescingQueue[Key] = coalescing.CoalescingQueue(
            self._reconcile, workers=writers, name="workpath-pools", linger=LINGER
        )
        self._loop = asyncio.get_running_loop()
        #: Replicas changed, by (namespace, pool, direction: up or down).
        self.decisions: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def add_measures(self, board: measures.Board) -> None:
        """The scaling decisions, and the Events about WorkerPools."""
        what = "WorkerPool replicas changed, by namespace, pool and direction (up, down)."
        labels = ("namespace", "pool", "direction")
        counter = measures.Kind.COUNTER
        board.add("workpath_scaling_decisions_total", what, kind=counter, read=lambda: self.decisions, labels=labels)
        self._recorder.add_measures(board, about=pools.KIND)

    def start(self) -> None:
        self._queue.start()

    async def close(self) -> None:
        for pool in self._pools.values():
            if pool.recheck is not None:
                pool.recheck.cancel()
        await self._queue.close()

    def service_accounts(self) -> frozenset[str]:
        """The ServiceAccounts (``NAMESPACE:NAME``) the pools' workers run as: the one each valid pool names, or
        its namespace's ``default``; their tokens may connect as workers."""
        return frozenset(
            f"{namespace}:{pool.spec.service_account_name or 'default'}"
            for (namespace, _), pool in self._pools.items()
            if pool.spec is not None
        )

    async def settled(self, timeout: float) -> bool:
        """Wait until no reconcile is pending or running (tests and benchmarks)."""
        return await self._queue.join(timeout)

    # ------------------------------------------------------------------ signals in

    def observe_pool(self, event_type: str | None, body: Body) -> None:
        """A watch event of a WorkerPool."""
        metadata = body.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        if event_type == "DELETED" or metadata.get("deletionTimestamp"):
            self._forget(key)
            return
        pool = self._pools.get(key)
        try:
            spec, invalid = pools.spec_of(body), None
        except pools.InvalidPoolError as exc:
            spec, invalid = None, str(exc)
        if pool is None:
            pool = self._pools[key] = _Pool(
                body=body, spec=spec, invalid=invalid, scaler=scaling.Scaler(clock=time.monotonic)
            )
            self._by_name.setdefault(key[1], set()).add(key)
        else:
            pool.body, pool.spec, pool.invalid = body, spec, invalid
        self._declare()
        self._queue.add(key)

    def observe_deployment(self, event_type: str | None, body: Body) -> None:
        """A watch event of a Deployment labelled with a pool."""
        key = self._owner(body)
        pool = self._pools.get(key) if key else None
        if pool is None or key is None:
            return
        pool.deployment = None if event_type == "DELETED" else body
        if pool.deployment is not None:
            pool.replicas = int((body.get("spec") or {}).get("replicas") or 0)
        self._queue.add(key)

    def observe_pod(self, event_type: str | None, body: Body) -> None:
        """A watch event of a pod labelled with a pool."""
        key = self._owner(body)
        pool = self._pools.get(key) if key else None
        if pool is None or key is None:
            return
        name = str(body["metadata"]["name"])
        if event_type == "DELETED":
            pool.pods.pop(name, None)
            pool.cordoned.discard(name)
        else:
            pool.pods[name] = body
        self._queue.add(key)

    def demand_changed(self, pool: str) -> None:
        """The service's queue for ``pool`` changed: scale up now if it needs to."""
        for key in self._by_name.get(pool, ()):
            self._queue.add(key)

    def _owner(self, body: Body) -> Key | None:
        metadata = body.get("metadata") or {}
        name = (metadata.get("labels") or {}).get(pools.POOL_LABEL)
        return (str(metadata.get("namespace", "")), str(name)) if name else None

    def _forget(self, key: Key) -> None:
        pool = self._pools.pop(key, None)
        if pool is None:
            return
        if pool.recheck is not None:
            pool.recheck.cancel()
        for worker in pool.cordoned:
            self._fleet.cordon(worker, cordoned=False)
        names = self._by_name.get(key[1], set())
        names.discard(key)
        if not names:
            self._by_name.pop(key[1], None)
        self._declare()
        logger.info("WorkerPool %s/%s deleted; its Deployment goes with it", *key)

    def _declare(self) -> None:
        patterns: dict[str, set[str]] = {}
        for (_, name), pool in self._pools.items():
            if pool.spec is not None:
                patterns.setdefault(name, set()).update(pool.spec.routines)
        self._fleet.declare_pools(patterns)

    # ------------------------------------------------------------------ reconcile

    async def _reconcile(self, key: Key) -> None:
        pool = self._pools.get(key)
        if pool is None:
            return
        try:
            if pool.spec is None:
                await self._write_status(key, pool, recommendation=None)
                return
            if not await self._ensure_deployment(key, pool, pool.spec):
                self._queue.add_later(key, 0.5)
                return
            recommendation = await self._scale(key, pool, pool.spec)
            await self._write_status(key, pool, recommendation=recommendation)
        except clients.ApiError as exc:
            if exc.status == 404 and key not in self._pools:
                return
            logger.warning("WorkerPool %s/%s: %s; trying again", key[0], key[1], exc)
            self._queue.add_later(key, 1.0)

    async def _ensure_deployment(self, key: Key, pool: _Pool, spec: pools.PoolSpec) -> bool:
        """Create or re-apply the pool's Deployment; False if it exists but its watch event is still to come."""
        replicas = pool.replicas if pool.replicas is not None else spec.min_replicas
        rendered = pools.render_deployment(pool.body, spec=spec, connection=self._connection, replicas=replicas)
        live = pool.deployment
        path = _deployments(key[0])
        if live is None:
            try:
                created = await self._client.request("POST", path, body=rendered)
            except clients.ApiError as exc:
                if exc.status != 409:
                    raise
                # It exists and the watch has not brought it yet: it will, and that marks the pool again.
                return False
            logger.info("WorkerPool %s/%s: created Deployment %s", *key, rendered["metadata"]["name"])
            pool.deployment = live = created
            pool.replicas = int(created["spec"]["replicas"])
        rendered["spec"]["replicas"] = live["spec"].get("replicas", replicas)
        edited = pools.differences(rendered, live)
        if edited:
            logger.info("WorkerPool %s/%s: Deployment differs (%s); applying it again", *key, ", ".join(edited[:5]))
            patch = {
                "metadata": {
                    "labels": rendered["metadata"]["labels"],
                    "annotations": rendered["metadata"]["annotations"],
                },
                "spec": {"template": rendered["spec"]["template"]},
            }
            pool.deployment = await self._client.request(
                "PATCH", f"{path}/{quote(rendered['metadata']['name'])}", body=patch, content_type=MERGE_PATCH
            )
        return True

    async def _scale(self, key: Key, pool: _Pool, spec: pools.PoolSpec) -> scaling.Recommendation:
        limits = scaling.Limits(
            slots=spec.slots,
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            scale_down_delay=float(spec.scale_down_delay_seconds),
        )
        demand = self._fleet.pool_demand(key[1])
        recommendation = pool.scaler.recommend(demand, limits=limits)
        self._recheck(key, pool, recommendation)
        current = pool.replicas or 0
        target = recommendation.desired
        if target > current:
            self._uncordon(pool)
            await self._set_replicas(key, pool, target, demand=demand, limits=limits)
        elif target < current:
            await self._scale_down(key, pool, target, demand=demand, limits=limits)
        elif pool.cordoned:
            self._uncordon(pool)
        return recommendation

    async def _scale_down(
        self, key: Key, pool: _Pool, target: int, *, demand: scaling.Demand, limits: scaling.Limits
    ) -> None:
        current = pool.replicas or 0
        known = self._fleet.pool_workers(key[1])
        live = {name: body for name, body in pool.pods.items() if not body["metadata"].get("deletionTimestamp")}
        missing = max(current - len(live), 0)  # replicas whose pods do not exist yet: nothing runs there
        if missing:
            await self._set_replicas(key, pool, max(target, current - missing), demand=demand, limits=limits)
            current = pool.replicas or 0
            if current <= target:
                return
        loads = [
            scaling.WorkerLoad(
                pod=name, busy=known[name][0] if name in known else 0, connected=known.get(name, (0, False))[1]
            )
            for name in live
        ]
        plan = scaling.choose_victims(loads, target=target)
        if not plan.victims:
            return  # every worker is busy: scale down later, when some are idle
        for victim in plan.victims:
            self._fleet.cordon(victim, cordoned=True)
            pool.cordoned.add(victim)
        await self._set_costs(key, pool, plan.costs)
        await self._set_replicas(key, pool, plan.replicas, demand=demand, limits=limits, victims=plan.victims)

    async def _set_costs(self, key: Key, pool: _Pool, costs: Mapping[str, int]) -> None:
        changed = {pod: cost for pod, cost in costs.items() if _cost(pool.pods.get(pod)) != cost}
        for pod, cost in changed.items():
            patch = {"metadata": {"annotations": {pools.POD_DELETION_COST_ANNOTATION: str(cost)}}}
            try:
                await self._client.request(
                    "PATCH",
                    f"/api/v1/namespaces/{quote(key[0])}/pods/{quote(pod)}",
                    body=patch,
                    content_type=MERGE_PATCH,
                )
            except clients.ApiError as exc:
                if exc.status != 404:
                    raise
        # The ReplicaSet controller reads the costs from its own watch: let them arrive before the replicas drop.
        deadline = self._loop.time() + COST_VISIBLE_TIMEOUT
        while any(pod in pool.pods and _cost(pool.pods[pod]) != cost for pod, cost in changed.items()):
            if self._loop.time() > deadline:
                logger.warning("WorkerPool %s/%s: pod costs not seen within %gs", *key, COST_VISIBLE_TIMEOUT)
                break
            await asyncio.sleep(0.01)

    async def _set_replicas(
        self,
        key: Key,
        pool: _Pool,
        replicas: int,
        *,
        demand: scaling.Demand,
        limits: scaling.Limits,
        victims: Iterable[str] = (),
    ) -> None:
        before = pool.replicas or 0
        if replicas == before:
            return
        name = pools.deployment_name(key[1])
        await self._client.request(
            "PATCH",
            f"{_deployments(key[0])}/{quote(name)}/scale",
            body={"spec": {"replicas": replicas}},
            content_type=MERGE_PATCH,
        )
        pool.replicas = replicas
        pool.last_scale = datetime.datetime.now(datetime.UTC)
        self.decisions[(key[0], key[1], "up" if replicas > before else "down")] += 1
        chosen = list(victims)
        message = (
            f"queued {demand.queued} + running {demand.running}, {limits.slots} slots → {replicas} replicas"
            f" (was {before}" + (f"; idle workers let go: {', '.join(chosen)}" if chosen else "") + ")"
        )
        logger.info("WorkerPool %s/%s: %s", key[0], key[1], message)
        self._recorder.record(
            _ref(pool.body),
            type=recording.EventType.NORMAL,
            reason="ScaledUp" if replicas > before else "ScaledDown",
            message=message,
        )

    def _uncordon(self, pool: _Pool) -> None:
        for worker in pool.cordoned:
            self._fleet.cordon(worker, cordoned=False)
        pool.cordoned.clear()

    def _recheck(self, key: Key, pool: _Pool, recommendation: scaling.Recommendation) -> None:
        """Come back when a delayed scale-down falls due, or while busy workers hold up a scale-down."""
        if pool.recheck is not None:
            pool.recheck.cancel()
            pool.recheck = None
        delay: float | None = None
        if recommendation.settles_at is not None:
            delay = max(recommendation.settles_at - time.monotonic(), 0.0) + 0.01
        elif recommendation.desired < (pool.replicas or 0):
            delay = 1.0
        if delay is not None:
            pool.recheck = self._loop.call_later(delay, self._queue.add, key)

    # ------------------------------------------------------------------ status

    async def _write_status(self, key: Key, pool: _Pool, *, recommendation: scaling.Recommendation | None) -> None:
        status = self._status(key, pool, recommendation)
        if status == pool.status:
            return
        patch = [{"op": "add", "path": "/status", "value": status}]
        path = f"/apis/{pools.API_VERSION}/namespaces/{quote(key[0])}/{pools.PLURAL}/{quote(key[1])}/status"
        await self._client.request("PATCH", path, body=patch, content_type=clients.JSON_PATCH)
        if pool.invalid is not None and pool.invalid != pool.reported_invalid:
            self._recorder.record(
                _ref(pool.body), type=recording.EventType.WARNING, reason="InvalidSpec", message=pool.invalid
            )
        pool.reported_invalid = pool.invalid
        pool.status = status

    def _status(self, key: Key, pool: _Pool, recommendation: scaling.Recommendation | None) -> dict[str, Any]:
        generation = int(pool.body["metadata"].get("generation") or 0)
        previous = {c["type"]: c for c in (pool.status or {}).get("conditions", [])}
        if pool.spec is None:
            conditions = [
                pool_statuses.condition(previous, pools.INVALID_SPEC, True, "InvalidSpec", pool.invalid or ""),
                pool_statuses.condition(
                    previous, pools.READY, False, "InvalidSpec", "the spec cannot be run; see InvalidSpec"
                ),
            ]
            return {"observedGeneration": generation, "conditions": conditions}
        demand = self._fleet.pool_demand(key[1])
        workers = self._fleet.pool_workers(key[1])
        deployment_status = (pool.deployment or {}).get("status") or {}
        ready = int(deployment_status.get("readyReplicas") or 0)
        desired = recommendation.desired if recommendation is not None else (pool.replicas or 0)
        failing = pool_statuses.not_starting(pool.pods.values())
        if failing:
            ready_condition = pool_statuses.condition(previous, pools.READY, False, "WorkersNotStarting", failing)
        elif ready >= desired:
            ready_condition = pool_statuses.condition(
                previous, pools.READY, True, "WorkersReady", f"{ready} of {desired} ready"
            )
        else:
            ready_condition = pool_statuses.condition(
                previous, pools.READY, False, "WorkersStarting", f"{ready} of {desired} ready"
            )
        limited = recommendation is not None and recommendation.limited
        conditions = [
            ready_condition,
            pool_statuses.condition(
                previous,
                pools.SCALING_LIMITED,
                limited,
                "AtMaxReplicas" if limited else "WithinLimits",
                f"the queue calls for {recommendation.wanted} workers; maxReplicas is {pool.spec.max_replicas}"
                if limited and recommendation is not None
                else "",
            ),
            pool_statuses.condition(previous, pools.INVALID_SPEC, False, "Valid", ""),
        ]
        status: dict[str, Any] = {
            "observedGeneration": generation,
            "replicas": int(deployment_status.get("replicas") or 0),
            "readyReplicas": ready,
            "desiredReplicas": desired,
            "connectedWorkers": sum(1 for _, connected in workers.values() if connected),
            "busySlots": sum(busy for busy, _ in workers.values()),
            "queued": demand.queued,
            "running": demand.running,
            "conditions": conditions,
        }
        if pool.last_scale is not None:
            status["lastScaleTime"] = pool.last_scale.isoformat().replace("+00:00", "Z")
        return status


def _deployments(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{quote(namespace)}/deployments"


def _cost(pod: Body | None) -> int | None:
    if pod is None:
        return None
    value = (pod["metadata"].get("annotations") or {}).get(pools.POD_DELETION_COST_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _ref(body: Body) -> recording.ObjectRef:
    metadata = body["metadata"]
    return recording.ObjectRef(
        api_version=pools.API_VERSION,
        kind=pools.KIND,
        namespace=str(metadata["namespace"]),
        name=str(metadata["name"]),
        uid=str(metadata.get("uid", "")),
    )
