"""The TokenReview authenticator: a token the API server vouches for (for the right audience, and an allowed
ServiceAccount when a list is given) is accepted and remembered briefly; concurrent connections with one token
share one review; anything else, including a failing API server, is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from workpath_operator.kube import clients, reviewing
from workpath_operator.service import authenticating

WORKER = "system:serviceaccount:jobs:workpath-worker"


def jwt(expires_in: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": time.time() + expires_in}).encode()).decode().rstrip("=")
    return f"header.{claims}.signature"


class FakeApi:
    """Answers TokenReviews like the API server would, counting them."""

    def __init__(self, *, username: str = WORKER, audiences: tuple[str, ...] = ("workpath",)) -> None:
        self.reviews = 0
        self.username = username
        self.audiences = audiences
        self.failing = False
        self.delay = 0.0

    async def review_token(self, token: str, *, audiences: list[str]) -> dict[str, Any]:
        self.reviews += 1
        await asyncio.sleep(self.delay)
        if self.failing:
            raise clients.ApiError(503, "ServiceUnavailable", "etcd is away", method="POST", path="/tokenreviews")
        if token == "bad":
            return {"authenticated": False, "error": "invalid bearer token"}
        return {"authenticated": True, "user": {"username": self.username}, "audiences": list(self.audiences)}


def authenticator(
    api: FakeApi, *, accounts: reviewing.AllowedAccounts = reviewing.ANY_ACCOUNT, **options: Any
) -> reviewing.TokenReviewAuthenticator:
    return reviewing.TokenReviewAuthenticator(api, accounts=accounts, **options)  # type: ignore[arg-type]


async def who(auth: authenticating.Authenticator, token: str) -> str | None:
    """The username the authenticator finds behind ``token``, None if it refuses it."""
    identity = await auth.authenticate(token)
    return identity.username if identity is not None else None


async def test_a_reviewed_token_is_accepted_and_remembered() -> None:
    api = FakeApi()
    auth = authenticator(api)
    token = jwt(600)
    assert await who(auth, token) == WORKER
    assert await who(auth, token) == WORKER
    assert api.reviews == 1


@pytest.mark.looptime
async def test_concurrent_connections_with_one_token_share_one_review() -> None:
    api = FakeApi()
    api.delay = 0.05
    auth = authenticator(api)
    token = jwt(600)
    assert await asyncio.gather(*(who(auth, token) for _ in range(5))) == [WORKER] * 5
    assert api.reviews == 1


async def test_refused_tokens_are_not_remembered() -> None:
    api = FakeApi()
    auth = authenticator(api)
    assert await auth.authenticate("bad") is None
    assert await auth.authenticate("bad") is None
    assert api.reviews == 2


async def test_a_token_for_another_audience_is_refused() -> None:
    auth = authenticator(FakeApi(audiences=("https://kubernetes.default.svc",)))
    assert await auth.authenticate(jwt(600)) is None


async def test_only_allowed_service_accounts_get_in() -> None:
    allowed = reviewing.AllowedAccounts(["jobs:workpath-worker"])
    assert await who(authenticator(FakeApi(), accounts=allowed), jwt(600)) == WORKER
    intruder = FakeApi(username="system:serviceaccount:jobs:intruder")
    assert await authenticator(intruder, accounts=allowed).authenticate(jwt(600)) is None


async def test_a_failing_api_server_refuses_the_token() -> None:
    api = FakeApi()
    api.failing = True
    assert await authenticator(api).authenticate(jwt(600)) is None


async def test_a_token_is_never_trusted_past_its_expiry_and_the_cache_is_bounded() -> None:
    api = FakeApi()
    auth = authenticator(api, cache_seconds=60, cache_size=2)
    expiring = jwt(-1)  # already expired by its own claim: reviewed every time
    await auth.authenticate(expiring)
    await auth.authenticate(expiring)
    assert api.reviews == 2

    tokens = [jwt(600 + n) for n in range(3)]
    for token in tokens:
        await auth.authenticate(token)
    await auth.authenticate(tokens[0])  # pushed out by the two after it
    assert api.reviews == 2 + 3 + 1


async def test_any_of_accepts_what_one_accepts() -> None:

    shared = authenticating.SharedTokenAuthenticator("s3cret")
    either = authenticating.AnyOfAuthenticator([shared, authenticator(FakeApi())])
    assert await who(either, "s3cret") == "shared-token"
    assert await who(either, jwt(600)) == WORKER
    assert await either.authenticate("bad") is None
