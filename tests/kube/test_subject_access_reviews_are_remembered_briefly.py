"""RBAC answers about runs API callers (SubjectAccessReview) are remembered briefly, allowed or not, per user and
question; concurrent requests asking the same share one review; a failure to ask refuses and is not remembered;
the cache is bounded. The review carries the caller's user, UID, groups and extra as TokenReview gave them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from workpath_operator.kube import authorizing, clients
from workpath_operator.service import authenticating

ALICE = authenticating.Identity(
    "alice", uid="u-1", groups=("devs", "system:authenticated"), extra={"scopes": ("a", "b")}, kubernetes=True
)
BOB = authenticating.Identity("bob", kubernetes=True)


class FakeApi:
    """Answers SubjectAccessReviews from a set of (user, verb, namespace) allowed, counting them."""

    def __init__(self, *allowed: tuple[str, str, str]) -> None:
        self.allowed = set(allowed)
        self.specs: list[dict[str, Any]] = []
        self.failing = False
        self.delay = 0.0

    async def review_access(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.specs.append(spec)
        await asyncio.sleep(self.delay)
        if self.failing:
            raise clients.ApiError(503, "ServiceUnavailable", "etcd is away", method="POST", path="/sar")
        attributes = spec["resourceAttributes"]
        if (spec["user"], attributes["verb"], attributes["namespace"]) in self.allowed:
            return {"allowed": True, "reason": "RBAC: allowed by RoleBinding"}
        return {"allowed": False, "reason": "no RBAC policy matched"}


def reviewer(api: FakeApi, **options: Any) -> authorizing.SubjectAccessReviewer:
    return authorizing.SubjectAccessReviewer(api, **options)  # type: ignore[arg-type]


async def test_the_review_asks_about_the_callers_whole_identity_and_routines() -> None:
    api = FakeApi(("alice", "create", "jobs"))
    decision = await reviewer(api).review(ALICE, verb="create", namespace="jobs")
    assert decision == authorizing.Decision(True, "RBAC: allowed by RoleBinding")
    assert api.specs == [
        {
            "user": "alice",
            "uid": "u-1",
            "groups": ["devs", "system:authenticated"],
            "extra": {"scopes": ["a", "b"]},
            "resourceAttributes": {
                "verb": "create",
                "group": "workpath.dev",
                "resource": "routines",
                "namespace": "jobs",
            },
        }
    ]


async def test_answers_are_remembered_per_question_yes_or_no() -> None:
    api = FakeApi(("alice", "create", "jobs"))
    sar = reviewer(api, cache_seconds=60)
    for _ in range(3):
        assert (await sar.review(ALICE, verb="create", namespace="jobs")).allowed
        assert not (await sar.review(ALICE, verb="delete", namespace="jobs")).allowed
        assert not (await sar.review(ALICE, verb="create", namespace="other")).allowed
        assert not (await sar.review(BOB, verb="create", namespace="jobs")).allowed
    assert len(api.specs) == 4
    assert (sar.memo.hits, sar.memo.misses) == (8, 4)


async def test_an_answer_is_asked_again_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(("alice", "get", "jobs"))
    sar = reviewer(api, cache_seconds=5)
    await sar.review(ALICE, verb="get", namespace="jobs")
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 6)
    api.allowed.clear()  # the role was revoked meanwhile
    assert not (await sar.review(ALICE, verb="get", namespace="jobs")).allowed
    assert len(api.specs) == 2


@pytest.mark.looptime
async def test_concurrent_requests_share_one_review() -> None:
    api = FakeApi(("alice", "get", "jobs"))
    api.delay = 0.05
    sar = reviewer(api)
    decisions = await asyncio.gather(*(sar.review(ALICE, verb="get", namespace="jobs") for _ in range(20)))
    assert all(decision.allowed for decision in decisions)
    assert len(api.specs) == 1


async def test_a_failure_to_ask_refuses_and_is_not_remembered() -> None:
    api = FakeApi(("alice", "get", "jobs"))
    api.failing = True
    sar = reviewer(api)
    refused = await sar.review(ALICE, verb="get", namespace="jobs")
    assert not refused.allowed and "503" in refused.reason
    api.failing = False
    assert (await sar.review(ALICE, verb="get", namespace="jobs")).allowed
    assert len(api.specs) == 2


async def test_the_cache_is_bounded() -> None:
    api = FakeApi()
    sar = reviewer(api, cache_size=2)
    for namespace in ("a", "b", "c", "a"):
        await sar.review(ALICE, verb="get", namespace=namespace)
    assert len(sar.memo) == 2
    assert len(api.specs) == 4  # "a" was pushed out by "b" and "c"


async def test_a_remembered_answer_costs_microseconds() -> None:
    sar = reviewer(FakeApi(("alice", "get", "jobs")), cache_seconds=60)
    await sar.review(ALICE, verb="get", namespace="jobs")
    rounds = 20_000
    began = time.perf_counter()
    for _ in range(rounds):
        await sar.review(ALICE, verb="get", namespace="jobs")
    per_hit = (time.perf_counter() - began) / rounds
    print(f"SubjectAccessReview cache hit: {per_hit * 1e6:.2f} µs")
    assert per_hit < 100e-6
