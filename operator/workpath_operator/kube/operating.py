"""The operator process: the directive service and kopf in one process, on one event loop.

:func:`operate` runs ``kopf.operator()`` until SIGINT/SIGTERM (kopf handles the signals).
The directive service lives inside kopf's lifecycle, as an :class:`Operator` that kopf's
startup and cleanup handlers start and stop:

- startup (before kopf watches anything): the service starts, which loads the Routines
  and restores their runs *before* it listens, so ``/readyz`` answering means the state
  is rebuilt, and kopf's first listing finds every Routine known already;
- cleanup (after kopf stopped watching): the service stops, closing the workers'
  connections and writing the statuses still dirty (for a few seconds at most).

Stopping inside kopf's cleanup matters: kopf cancels, after a 5-second wait, every task
started after it that is still alive when it stops (the service's connections, say).

With ``--leader-elect`` (the chart's replicas), all of that waits until this process
holds the Lease (:mod:`~workpath_operator.kube.electing`): a standby runs neither kopf
nor the service; it answers the probes, ready once its pod carries no leader label. The
leader labels its pod before it serves (the Service selects that label) and renews the
Lease beside kopf; losing it exits the process at once; a graceful stop releases it after
the service has stopped writing, so a standby takes over within a retry period, then
takes the label off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import kopf

from workpath import directives
from workpath_operator.kube import (
    admitting,
    authorizing,
    clients,
    electing,
    handling,
    pooling,
    pools,
    recording,
    reviewing,
    routine_store,
    settings,
    submitting,
    worker_pods,
)
from workpath_operator.service import authenticating, serving

logger = logging.getLogger("workpath.operator")


async def operate(settings: settings.OperatorSettings) -> int:
    """Run the operator until it is stopped (with --leader-elect: once it leads); the process exit code."""
    configuration = await clients.load_configuration()
    async with clients.KubernetesClient(configuration) as client:
        if not settings.leader_elect:
            await serve(client, settings=settings)
            return 0
        elector = electing.Elector(
            client,
            namespace=settings.election_namespace,
            name=settings.lease_name,
            identity=settings.leader_identity,
            timing=electing.Timing(
                lease_duration=settings.lease_duration,
                renew_deadline=settings.renew_deadline,
                retry_period=settings.retry_period,
            ),
        )
        label = electing.LeaderLabel(client, pod=settings.own_pod, retry_period=settings.retry_period)
        if not await electing.stand_by(elector, label=label, host=settings.host, port=settings.port):
            return 0
        async with electing.leading(elector, label=label, on_lost=_exit_at_once) as leadership:
            await serve(client, settings=settings, stopped=leadership.release)
    return 0


async def serve(
    client: clients.KubernetesClient,
    *,
    settings: settings.OperatorSettings,
    stopped: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """kopf with the directive service inside, until SIGINT or SIGTERM; ``stopped`` is awaited as soon as the
    service has stopped writing (the Lease is released then, not after kopf's own wait for lingering tasks)."""
    operator = Operator(client, settings=settings, stopped=stopped)
    try:
        await kopf.operator(
            registry=handling.registry(
                operator, configuration=client.configuration, pooled=operator if settings.worker_url else None
            ),
            settings=handling.settings(),
            standalone=True,
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness_endpoint,
        )
    except Exception:
        if operator.failure is not None:  # kopf wraps it: say what failed, e.g. listing Routines was forbidden
            raise operator.failure from None
        raise
    finally:
        await operator.stop()


def _exit_at_once() -> None:
    """The Lease is lost: another replica may lead any moment, so nothing may be dispatched or written from
    here on. Exit now, without cleanup (which writes statuses), as controller-runtime does; the pod restarts
    the container, which stands by."""
    logger.critical("lost the leader's Lease: exiting at once")
    logging.shutdown()
    os._exit(1)


class Operator:
    """The directive service with the Routine store behind it, and the reconciler that feeds it Routines."""

    def __init__(
        self,
        client: clients.KubernetesClient,
        *,
        settings: settings.OperatorSettings,
        stopped: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self._stopped = stopped
        self.store = routine_store.RoutineStore(
            client, settings=settings, on_vanished=self._cancel, finished_kept=settings.finished_runs_kept
        )
        self.service = serving.DirectiveService(
            settings=settings,
            store=self.store,
            authenticator=authenticator(client, settings, pools=self._pool_accounts),
            access=runs_access(client, settings, admit=lambda body: self.observe("ADDED", body)),
        )
        self._client = client
        self._reconciler: admitting.Reconciler | None = None
        self._worker_pods: worker_pods.WorkerPodWatch | None = None
        self._pools: pooling.PoolController | None = None
        self._pool_events: recording.EventRecorder | None = None
        self._started = False
        #: Why :meth:`start` failed, if it did.
        self.failure: Exception | None = None

    async def start(self) -> None:
        """Load the Routines, restore their runs, listen for workers."""
        self._started = True
        try:
            await self.service.start()
        except Exception as exc:
            self.failure = exc
            raise
        self._reconciler = admitting.Reconciler(store=self.store, dispatcher=self.service.dispatcher)
        self._worker_pods = worker_pods.WorkerPodWatch(self.service.dispatcher)
        settings = self.settings
        if settings.worker_url:
            self._start_pools(settings.worker_url)
        scope = "all namespaces" if settings.all_namespaces else "namespace(s) " + ", ".join(settings.namespaces)
        logger.info("serving Routines in %s; workers connect to %s", scope, self.service.url)

    async def stop(self) -> None:
        """Stop the service (once): close the connections, write what is dirty."""
        if self._started:
            self._started = False
            self._reconciler = None
            self._worker_pods = None
            if self._pools is not None and self._pool_events is not None:
                await self._pools.close()
                await self._pool_events.close()
                self._pools = self._pool_events = None
            await self.service.stop()
            if self._stopped is not None:
                await self._stopped()

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a Routine."""
        if self._reconciler is None:
            logger.warning("a %s event of a Routine came while the operator is not serving", event_type)
            return
        self._reconciler.observe(event_type, body)

    def observe_worker_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event of a worker pod: its worker is lost at once if the pod says its process is gone."""
        if self._worker_pods is not None:
            self._worker_pods.observe(event_type, body)

    def _start_pools(self, worker_url: str) -> None:
        """Run the WorkerPool controller, fed by the dispatcher's queue changes."""
        settings = self.settings
        self._pool_events = recording.EventRecorder(
            self._client, rate=settings.events_per_second, burst=settings.event_burst
        )
        self._pool_events.start()
        dispatcher = self.service.dispatcher
        self._pools = pooling.PoolController(
            self._client,
            fleet=dispatcher.pools,
            recorder=self._pool_events,
            connection=pools.WorkerConnection(url=worker_url, token_audience=settings.token_audience),
            writers=settings.pool_writers,
        )
        dispatcher.pools.on_demand(self._pools.demand_changed)
        self._pools.add_measures(self.service.measures)
        self._pools.start()
        logger.info("running WorkerPools; their workers connect to %s", worker_url)

    def observe_pool(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self._pools is not None:
            self._pools.observe_pool(event_type, body)

    def observe_deployment(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self._pools is not None:
            self._pools.observe_deployment(event_type, body)

    def observe_pod(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        if self._pools is not None:
            self._pools.observe_pod(event_type, body)

    def _cancel(self, run_id: directives.RunID, reason: str) -> None:
        self.service.dispatcher.cancel(run_id, reason=reason)

    def _pool_accounts(self) -> frozenset[str]:
        """The ServiceAccounts of the WorkerPools run here (none without --worker-url)."""
        return self._pools.service_accounts() if self._pools is not None else frozenset()


def authenticator(
    client: clients.KubernetesClient,
    settings: settings.OperatorSettings,
    *,
    pools: Callable[[], Collection[str]],
) -> authenticating.Authenticator:
    """The workers': the shared token if one is set, then TokenReview if enabled (at least one of them), for
    the allowed ServiceAccounts and those ``pools()`` names, or any with --allow-any-service-account."""
    choices: list[authenticating.Authenticator] = []
    if settings.token:
        choices.append(authenticating.SharedTokenAuthenticator(settings.token))
    if settings.token_review:
        accounts = reviewing.AllowedAccounts(
            settings.allowed_service_accounts, pools=pools, any_account=settings.allow_any_service_account
        )
        choices.append(
            reviewing.TokenReviewAuthenticator(
                client,
                accounts=accounts,
                audiences=((settings.token_audience,),),
                cache_seconds=settings.token_cache_seconds,
                cache_size=settings.token_cache_size,
            )
        )
    if not choices:
        raise ValueError("workers could not authenticate: enable --token-review or give --token (WORKPATH_TOKEN)")
    return choices[0] if len(choices) == 1 else authenticating.AnyOfAuthenticator(choices)


def runs_access(
    client: clients.KubernetesClient, settings: settings.OperatorSettings, *, admit: Callable[[clients.Body], object]
) -> submitting.RoutineAccess:
    """The runs API's: Kubernetes tokens (the shared token too, to be told it is not one), RBAC on Routines."""
    reviewed = reviewing.runs_api_authenticator(
        client,
        audience=settings.token_audience,
        cache_seconds=settings.token_cache_seconds,
        cache_size=settings.token_cache_size,
    )
    callers: authenticating.Authenticator = reviewed
    if settings.token:
        callers = authenticating.AnyOfAuthenticator([authenticating.SharedTokenAuthenticator(settings.token), reviewed])
    return submitting.RoutineAccess(
        client,
        authenticator=callers,
        reviewer=authorizing.SubjectAccessReviewer(
            client, cache_seconds=settings.authorization_cache_seconds, cache_size=settings.authorization_cache_size
        ),
        namespaces=() if settings.all_namespaces else settings.namespaces,
        admit=admit,
    )
