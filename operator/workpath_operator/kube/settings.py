"""The settings of ``workpath operator``: the directive service's, and the Kubernetes side's.

:class:`OperatorSettings` extends the service's settings with what only the operator
needs: which Routines it watches, how it authenticates workers with Kubernetes, how it
writes to the API server. One object, so that the checks across both halves (workers
must have a way to authenticate) are one model validator.
"""

from __future__ import annotations

from typing import Self

import pydantic

from workpath_operator.service import settings


class OperatorSettings(settings.ServiceSettings):
    """The directive service's settings, plus what the operator watches, how it authenticates workers,
    how it writes."""

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
    def _workers_can_authenticate(self) -> Self:
        if not self.token and not self.token_review:
            raise ValueError("workers could not authenticate: keep --token-review or give --token (WORKPATH_TOKEN)")
        return self
