"""Authentication in a cluster: bearer tokens checked with TokenReview, workers limited to some ServiceAccounts.

A worker pod mounts a projected ServiceAccount token for the audience ``workpath``, bound to
the pod, and presents it as its bearer token. :class:`TokenReviewAuthenticator` asks the API
server whether the token is valid for that audience (TokenReview) and answers with an
:class:`~workpath_operator.service.authenticating.Identity`: the user, its groups and extra
attributes, and for a bound token the pod's name and UID (the ``extra`` keys
``authentication.kubernetes.io/pod-name`` and ``pod-uid``). The answer is remembered briefly
(never past the token's own expiry), keyed by a hash of the token, in a bounded cache;
concurrent connections with the same token share one review. Any failure to review refuses
the token (a worker retries with backoff).

For workers, :class:`AllowedAccounts` then says whether that ServiceAccount may connect at all:
by default only the accounts named (the chart names its workers' account) and those of the
WorkerPools the operator runs; any account only when asked for. This check is made on every
connection, not remembered, so a WorkerPool created or deleted counts at once.

Callers of the runs API are reviewed for the API server's own audiences too (see
:func:`runs_api_authenticator`); Kubernetes RBAC then decides what they may do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from workpath_operator.kube import clients, remembering
from workpath_operator.service import authenticating

logger = logging.getLogger("workpath.auth")

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
#: Spec audiences that mean "the API server's own" to TokenReview.
API_AUDIENCES: tuple[str, ...] = ()


def _no_pools() -> Collection[str]:
    return ()


class AllowedAccounts:
    """Which ServiceAccounts (``NAMESPACE:NAME``) may connect as workers: those ``named``, those ``pools()``
    name, or any when ``any_account``."""

    def __init__(
        self,
        named: Collection[str] = (),
        *,
        pools: Callable[[], Collection[str]] = _no_pools,
        any_account: bool = False,
    ) -> None:
        self._named = frozenset(named)
        self._pools = pools
        self._any = any_account

    def allows(self, identity: authenticating.Identity) -> bool:
        if self._any:
            return True
        if not identity.username.startswith(SERVICE_ACCOUNT_PREFIX):
            return False
        account = identity.username.removeprefix(SERVICE_ACCOUNT_PREFIX)
        return account in self._named or account in self._pools()

    def __str__(self) -> str:
        return "any ServiceAccount" if self._any else "ServiceAccounts " + ", ".join(sorted(self._named) or ["-"])


ANY_ACCOUNT = AllowedAccounts(any_account=True)


class TokenReviewAuthenticator:
    """Accepts tokens the API server vouches for, for one of ``audiences`` in turn (each a TokenReview's
    ``spec.audiences``; empty: the API server's own), from the ``accounts`` allowed."""

    def __init__(
        self,
        client: clients.KubernetesClient,
        *,
        accounts: AllowedAccounts,
        audiences: Sequence[Sequence[str]] = (("workpath",),),
        cache_seconds: float = 30.0,
        cache_size: int = 1024,
        who: str = "worker",
    ) -> None:
        self._client = client
        self._accounts = accounts
        self._audiences = tuple(tuple(each) for each in audiences)
        self._cache_seconds = cache_seconds
        self._who = who
        self._memo: remembering.Memo[bytes, authenticating.Identity | None] = remembering.Memo(
            size=cache_size, name="token-review"
        )

    async def authenticate(self, token: str) -> authenticating.Identity | None:
        digest = hashlib.sha256(token.encode()).digest()
        identity = await self._memo.get(digest, lambda: self._review(token))
        if identity is not None and not self._accounts.allows(identity):
            logger.warning("refused a %s token of %s: not one of the %s allowed", self._who, identity, self._accounts)
            return None
        return identity

    async def _review(self, token: str) -> tuple[authenticating.Identity | None, float]:
        """The identity the token proves (None if none) and how long to trust that."""
        why: list[str] = []
        for audiences in self._audiences:
            try:
                status = await self._client.review_token(token, audiences=list(audiences))
            except clients.ApiError as exc:
                logger.error("cannot review a %s's token, so it is refused: %s", self._who, exc)
                return None, 0.0
            granted: Sequence[str] = status.get("audiences") or ()
            if not status.get("authenticated"):
                why.append(str(status.get("error") or "not authenticated"))
            elif audiences and not set(audiences) & set(granted):
                why.append(f"it is for {list(granted)}, not for {list(audiences)}")
            else:
                return identity_of(status.get("user") or {}), min(self._cache_seconds, _seconds_left(token))
        logger.warning("refused a %s token: %s", self._who, "; ".join(why))
        return None, 0.0


def identity_of(user: Mapping[str, Any]) -> authenticating.Identity:
    """The identity in a TokenReview's ``status.user``."""
    extra = {str(key): tuple(str(v) for v in values or ()) for key, values in (user.get("extra") or {}).items()}
    pod_name, pod_uid = extra.get(POD_NAME, ()), extra.get(POD_UID, ())
    return authenticating.Identity(
        username=str(user.get("username") or ""),
        uid=str(user.get("uid") or ""),
        groups=tuple(str(group) for group in user.get("groups") or ()),
        extra=extra,
        pod_name=pod_name[0] if pod_name else None,
        pod_uid=pod_uid[0] if pod_uid else None,
        kubernetes=True,
    )


def runs_api_authenticator(
    client: clients.KubernetesClient, *, audience: str, cache_seconds: float, cache_size: int
) -> TokenReviewAuthenticator:
    """Callers of the runs API: tokens for ``audience`` (a pod's workpath token), else for the API server itself.

    The API server's audience is accepted because that is what people and CI hold (kubectl's credentials,
    ``kubectl create token``), and Kubernetes RBAC, asked next, is what decides; the ``workpath`` audience lets a
    pod call the API without holding a credential the API server accepts. Any account: RBAC decides.
    """
    return TokenReviewAuthenticator(
        client,
        accounts=ANY_ACCOUNT,
        audiences=((audience,), API_AUDIENCES),
        cache_seconds=cache_seconds,
        cache_size=cache_size,
        who="runs API caller",
    )


def _seconds_left(token: str) -> float:
    """Seconds until the JWT's ``exp`` (unverified: the API server verified it), or infinity if unknown."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - time.time()
    except (IndexError, ValueError, KeyError, TypeError):
        return float("inf")
