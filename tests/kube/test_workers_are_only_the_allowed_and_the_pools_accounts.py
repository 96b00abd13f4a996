"""Which tokens connect as workers: by default only the ServiceAccounts named (the chart names its workers') and
those of the WorkerPools (their serviceAccountName, or their namespace's default), checked on every connection so
that a pool created or deleted counts at once; any account only when asked for. A bound token names its pod.
Callers of the runs API are reviewed for the workpath audience, then for the API server's own."""

from __future__ import annotations

from typing import Any

from workpath_operator.kube import reviewing

NAMED = "system:serviceaccount:workpath:workpath-worker"
POOLS = "system:serviceaccount:analytics:reports-worker"
OTHER = "system:serviceaccount:analytics:intruder"


class FakeApi:
    """Answers TokenReviews: each token is a username, valid for the ``audiences`` it was issued for."""

    def __init__(self, audiences: dict[str, tuple[str, ...]]) -> None:
        self.audiences = audiences
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    async def review_token(self, token: str, *, audiences: list[str]) -> dict[str, Any]:
        self.asked.append((token, tuple(audiences)))
        issued = self.audiences.get(token, ())
        wanted = tuple(audiences) or ("https://kubernetes.default.svc",)  # empty: the API server's own
        granted = [audience for audience in wanted if audience in issued]
        if not granted:
            return {"authenticated": False, "error": "token audiences are invalid"}
        return {"authenticated": True, "user": {"username": token}, "audiences": granted}


async def test_only_named_and_pool_accounts_connect_unless_any_is_asked_for() -> None:
    api = FakeApi({NAMED: ("workpath",), POOLS: ("workpath",), OTHER: ("workpath",)})
    pools: set[str] = set()
    accounts = reviewing.AllowedAccounts(["workpath:workpath-worker"], pools=lambda: pools)
    workers = reviewing.TokenReviewAuthenticator(api, accounts=accounts)  # type: ignore[arg-type]

    assert await workers.authenticate(NAMED) is not None
    assert await workers.authenticate(POOLS) is None
    pools.add("analytics:reports-worker")  # a WorkerPool naming it was created
    assert await workers.authenticate(POOLS) is not None
    assert await workers.authenticate(OTHER) is None
    pools.clear()  # ... and deleted: its tokens are refused at once, though their review is remembered
    assert await workers.authenticate(POOLS) is None
    assert [token for token, _ in api.asked].count(POOLS) == 1

    anyone = reviewing.TokenReviewAuthenticator(api, accounts=reviewing.ANY_ACCOUNT)  # type: ignore[arg-type]
    assert await anyone.authenticate(OTHER) is not None
    assert not reviewing.AllowedAccounts().allows(reviewing.identity_of({"username": "alice"}))


async def test_runs_api_callers_may_hold_a_workpath_token_or_an_api_token() -> None:
    api = FakeApi({"pod": ("workpath",), "kubectl": ("https://kubernetes.default.svc",), "elsewhere": ("vault",)})
    callers = reviewing.runs_api_authenticator(api, audience="workpath", cache_seconds=30, cache_size=8)  # type: ignore[arg-type]
    workers = reviewing.TokenReviewAuthenticator(api, accounts=reviewing.ANY_ACCOUNT)  # type: ignore[arg-type]

    assert await callers.authenticate("pod") is not None
    assert await callers.authenticate("kubectl") is not None
    assert await callers.authenticate("elsewhere") is None
    assert await workers.authenticate("kubectl") is None  # an API credential is no worker's token
    assert ("kubectl", ("workpath",)) in api.asked and ("kubectl", ()) in api.asked


async def test_a_bound_token_names_its_pod() -> None:
    identity = reviewing.identity_of(
        {
            "username": "system:serviceaccount:jobs:worker",
            "uid": "sa-uid",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:jobs", "system:authenticated"],
            "extra": {
                "authentication.kubernetes.io/pod-name": ["worker-7c9f"],
                "authentication.kubernetes.io/pod-uid": ["0f6c-11"],
                "authentication.kubernetes.io/credential-id": ["JTI=abc"],
            },
        }
    )
    assert (identity.pod_name, identity.pod_uid, identity.holder) == ("worker-7c9f", "0f6c-11", "pod:0f6c-11")
    assert identity.kubernetes and identity.uid == "sa-uid"
    assert identity.extra["authentication.kubernetes.io/credential-id"] == ("JTI=abc",)
    unbound = reviewing.identity_of({"username": "alice", "groups": ["devs"]})
    assert (unbound.pod_name, unbound.holder) == (None, "user:alice")
