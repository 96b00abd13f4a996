"""Worker authentication in a cluster: projected ServiceAccount tokens, checked with TokenReview.

A worker pod mounts a projected ServiceAccount token for the audience ``workpath``
and presents it as its bearer token. :class:`TokenReviewAuthenticator` asks the API
server whether the token is valid for that audience (TokenReview), optionally only
for some ServiceAccounts, and remembers a positive answer briefly (never past the
token's own expiry), keyed by a hash of the token, in a bounded cache. Concurrent
connections with the same token share one review. Any failure to review refuses the
connection (the worker retries with backoff).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import logging
import time
from collections.abc import Collection, Sequence

from workpath_operator.kube import clients

logger = logging.getLogger("workpath.auth")

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class TokenReviewAuthenticator:
    """Accepts ServiceAccount tokens the API server vouches for; the identity is the account's username."""

    def __init__(
        self,
        client: clients.KubernetesClient,
        *,
        audience: str = "workpath",
        allowed: Collection[str] = (),
        cache_seconds: float = 30.0,
        cache_size: int = 1024,
    ) -> None:
        self._client = client
        self._audience = audience
        #: ``system:serviceaccount:NAMESPACE:NAME`` usernames allowed; any if empty.
        self._allowed = frozenset(SERVICE_ACCOUNT_PREFIX + account for account in allowed)
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._cache: collections.OrderedDict[bytes, tuple[str, float]] = collections.OrderedDict()
        self._reviews: dict[bytes, asyncio.Task[tuple[str | None, float]]] = {}

    async def authenticate(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None:
            identity, expires = cached
            if now < expires:
                self._cache.move_to_end(digest)
                return identity
            del self._cache[digest]
        review = self._reviews.get(digest)
        if review is None:
            review = asyncio.create_task(self._review(token), name="workpath-token-review")
            self._reviews[digest] = review
            review.add_done_callback(lambda _: self._reviews.pop(digest, None))
        reviewed, lifetime = await asyncio.shield(review)
        if reviewed is not None and lifetime > 0:
            self._cache[digest] = (reviewed, time.monotonic() + lifetime)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return reviewed

    async def _review(self, token: str) -> tuple[str | None, float]:
        """The identity the token proves (None if none) and how long to trust that."""
        try:
            status = await self._client.review_token(token, audiences=[self._audience])
        except clients.ApiError as exc:
            logger.error("cannot review a worker's token, so it is refused: %s", exc)
            return None, 0.0
        if not status.get("authenticated"):
            logger.warning("refused a worker token: %s", status.get("error") or "not authenticated")
            return None, 0.0
        audiences: Sequence[str] = status.get("audiences") or ()
        if self._audience not in audiences:
            logger.warning("refused a worker token: it is for %s, not for %r", list(audiences), self._audience)
            return None, 0.0
        username = str((status.get("user") or {}).get("username") or "")
        if self._allowed and username not in self._allowed:
            logger.warning("refused a worker token of %s: not an allowed ServiceAccount", username)
            return None, 0.0
        return username, min(self._cache_seconds, _seconds_left(token))


def _seconds_left(token: str) -> float:
    """Seconds until the JWT's ``exp`` (unverified: the API server verified it), or infinity if unknown."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - time.time()
    except (IndexError, ValueError, KeyError, TypeError):
        return float("inf")
