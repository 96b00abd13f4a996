"""The settings of ``workpath operator``: the directive service's, and the Kubernetes side's.

:class:`OperatorSettings` extends the service's settings with what only the operator
needs: which Routines it watches, how it authenticates workers with Kubernetes, how it
writes to the API server, how its replicas elect the one that serves. One object, so that
the checks across both halves (workers must have a way to authenticate) are one model validator.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import ClassVar, Self

import pydantic

from workpath_operator.service import settings

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$"
#: The leader must be able to try this many renewals within its renew deadline (client-go's jitter factor).
RENEW_TRIES = 1.2


def _pod_namespace() -> str | None:
    """The chart gives the pod's namespace through the downward API."""
    return os.environ.get("POD_NAMESPACE") or None


def _pod_name() -> str | None:
    """The chart gives the pod's name through the downward API."""
    return os.environ.get("POD_NAME") or None


def _default_identity() -> str:
    return _pod_name() or f"{socket.gethostname()}-{os.getpid()}"


class OperatorSettings(settings.ServiceSettings):
    """The directive service's settings, plus what the operator watches, how it authenticates workers,
    how it writes, and how its replicas elect a leader."""

    shown_defaults: ClassVar[Mapping[str, str]] = {
        "lease_namespace": "$POD_NAMESPACE, else the one --namespace served",
        "leader_identity": "$POD_NAME, else <hostname>-<pid>",
        "pod_name": "$POD_NAME",
        "pod_namespace": "$POD_NAMESPACE",
    }

    namespaces: tuple[str, ...] = ()
    """Namespaces whose Routines the operator serves; repeat the flag for several (comma-separated in the
    environment)."""

    all_namespaces: bool = False
    """Serve the Routines of every namespace."""

    token_review: bool = True
    """Accept workers' projected ServiceAccount tokens, checked with the TokenReview API. The shared token
    (--token) is accepted too when set."""

    token_audience: str = pydantic.Field(default="workpath", min_length=1)
    """Audience a worker's ServiceAccount token must be issued for."""

    allowed_service_accounts: tuple[str, ...] = ()
    """ServiceAccounts (NAMESPACE:NAME) whose tokens may connect as workers, besides those the WorkerPools name
    (spec.serviceAccountName, or the pool namespace's default account); repeat the flag for several
    (comma-separated in the environment)."""

    allow_any_service_account: bool = False
    """Let a token of any ServiceAccount (for the token audience) connect as a worker, not only the allowed ones
    and the WorkerPools' (a pod that can get such a token could then take runs and their params)."""

    token_cache_seconds: float = pydantic.Field(default=30.0, ge=0)
    """Seconds a token that passed TokenReview is trusted without asking again."""

    token_cache_size: int = pydantic.Field(default=1024, ge=0)
    """Most tokens remembered as reviewed."""

    authorization_cache_seconds: float = pydantic.Field(default=5.0, ge=0)
    """Seconds an answer of Kubernetes RBAC (SubjectAccessReview) about a runs API caller is remembered, allowed
    or not: a role granted or revoked counts within this time."""

    authorization_cache_size: int = pydantic.Field(default=4096, ge=0)
    """Most RBAC answers remembered."""

    status_writers: int = pydantic.Field(default=16, ge=1)
    """Concurrent writes to the API server (status patches, child Routines, deletions); a Routine has at most
    one in flight, and the changes that pile up meanwhile become one patch."""

    status_linger: float = pydantic.Field(default=0.005, ge=0)
    """Seconds a Routine's first change waits before it is written, so that the changes right after it are
    written with it."""

    events_per_second: float = pydantic.Field(default=20.0, ge=0)
    """Kubernetes Events posted per second at most, in bursts of up to --event-burst; the ones over the
    budget are dropped and counted, never queued without bound; 0 posts none."""

    event_burst: int = pydantic.Field(default=100, ge=0)
    """Events that may be posted at once after a quiet time."""

    worker_url: str | None = pydantic.Field(default=None, pattern=r"^wss?://\S+$")
    """WebSocket URL at which worker pods reach this operator through its Service, e.g.
    ws://workpath.workpath.svc:7740/v1/workers. With it the operator runs a Deployment for each WorkerPool and
    scales it from the queue; without it WorkerPools are not watched (and need no RBAC)."""

    pool_writers: int = pydantic.Field(default=4, ge=1)
    """WorkerPools reconciled at once (Deployment, pod costs, replicas, status); a pool has at most one
    reconcile in flight."""

    liveness_endpoint: str | None = None
    """kopf's own liveness endpoint, e.g. http://0.0.0.0:8080/healthz; the directive service serves /healthz
    and /readyz in any case."""

    leader_elect: bool = False
    """Run as one of several replicas: only the holder of a coordination.k8s.io Lease watches Routines,
    dispatches, writes status and takes workers; the others stand by (healthy and ready) and take over when the
    Lease is released or expires. The leader labels its own pod (--pod-name) workpath.dev/leader=true, which the
    chart's Service selects, so that workers reach the leader only. The chart turns it on."""

    lease_name: str = pydantic.Field(default="workpath-operator", pattern=_DNS_SUBDOMAIN)
    """Name of the Lease the replicas elect their leader with."""

    lease_namespace: str | None = pydantic.Field(default_factory=_pod_namespace, pattern=_DNS_LABEL)
    """Namespace of the Lease: the operator's own."""

    leader_identity: str = pydantic.Field(default_factory=_default_identity, min_length=1, max_length=253)
    """This replica's name in the Lease, unique among the replicas. A container restarted in the same pod keeps
    the pod's name and, if no other replica took over meanwhile, leads again at once."""

    lease_duration: float = pydantic.Field(default=6.0, ge=1)
    """Seconds a standby waits, from when it last saw the Lease renewed, before it takes over: about the time
    after which a leader that died without releasing the Lease is replaced."""

    renew_deadline: float = pydantic.Field(default=4.0, gt=0)
    """Seconds the leader keeps trying to renew the Lease before it exits; under --lease-duration, so that it has
    stopped before a standby may take over."""

    retry_period: float = pydantic.Field(default=1.0, gt=0)
    """Seconds between the leader's renewals, and between a standby's looks at the Lease (the delay of a takeover
    after a graceful shutdown, which releases the Lease)."""

    pod_name: str | None = pydantic.Field(default_factory=_pod_name, pattern=_DNS_SUBDOMAIN)
    """This replica's pod, which the leader labels workpath.dev/leader=true and every replica unlabels when it
    starts and when it releases the Lease. Without it (and --pod-namespace), as outside a pod, nothing is labelled."""

    pod_namespace: str | None = pydantic.Field(default_factory=_pod_namespace, pattern=_DNS_LABEL)
    """Namespace of this replica's pod."""

    @pydantic.field_validator("allowed_service_accounts", mode="after")
    @classmethod
    def _accounts_are_namespace_and_name(cls, accounts: tuple[str, ...]) -> tuple[str, ...]:
        for account in accounts:
            namespace, sep, name = account.partition(":")
            if not sep or not namespace or not name or ":" in name:
                raise ValueError(f"allowed ServiceAccount {account!r} is not NAMESPACE:NAME")
        return accounts

    @pydantic.model_validator(mode="after")
    def _namespaces_said_once(self) -> Self:
        if self.all_namespaces and self.namespaces:
            raise ValueError("give --all-namespaces or --namespace, not both")
        if not self.all_namespaces and not self.namespaces:
            raise ValueError("say which Routines to serve: --namespace NS (repeatable) or --all-namespaces")
        return self

    @pydantic.model_validator(mode="after")
    def _election_can_work(self) -> Self:
        if not self.leader_elect:
            return self
        if self.lease_namespace is None and len(self.namespaces) != 1:
            raise ValueError("the leader election needs the Lease's namespace: give --lease-namespace (the operator's)")
        if not self.lease_duration > self.renew_deadline > self.retry_period * RENEW_TRIES:
            raise ValueError(
                f"leader election timing out of order: need --lease-duration ({self.lease_duration}) > "
                f"--renew-deadline ({self.renew_deadline}) > {RENEW_TRIES} x --retry-period ({self.retry_period}), "
                "so that a leader tries to renew more than once and gives up before a standby may take over"
            )
        return self

    @property
    def own_pod(self) -> tuple[str, str] | None:
        """This replica's pod (namespace, name) when it runs in one, for the leader label."""
        if self.pod_name is None or self.pod_namespace is None:
            return None
        return self.pod_namespace, self.pod_name

    @property
    def election_namespace(self) -> str:
        """The Lease's namespace: --lease-namespace (or $POD_NAMESPACE), else the one namespace served."""
        return self.lease_namespace or self.namespaces[0]

    @pydantic.model_validator(mode="after")
    def _workers_can_authenticate(self) -> Self:
        if not self.token and not self.token_review:
            raise ValueError("workers could not authenticate: keep --token-review or give --token (WORKPATH_TOKEN)")
        return self
