"""The WorkerPool controller without an API server: a pool the CRD let through but that cannot be run (admitted
before a CRD update, or where CEL is off) gets an InvalidSpec condition and a Warning Event, and no Deployment; fixed,
it gets its Deployment. Nothing crashes, nothing loops."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tests import waiting
from workpath_operator.kube import pooling, pools, recording
from workpath_operator.service import scaling


class FakeApi:
    """Answers the controller's requests like an API server that accepts everything."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, *, body: object = None, **_: object) -> dict[str, Any]:
        self.requests.append((method, path, body))
        if method == "POST" and isinstance(body, dict):
            return body | {"status": {}}
        return {}


class FakeFleet:
    def __init__(self) -> None:
        self.declared: dict[str, set[str]] = {}

    def declare_pools(self, patterns: Mapping[str, Iterable[str]]) -> None:
        self.declared = {name: set(p) for name, p in patterns.items()}

    def pool_demand(self, pool: str) -> scaling.Demand:
        return scaling.Demand()

    def pool_workers(self, pool: str) -> Mapping[str, tuple[int, bool]]:
        return {}

    def cordon(self, worker_id: str, *, cordoned: bool) -> None:
        raise AssertionError("nothing to cordon")


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, ref: recording.ObjectRef, *, type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))


def pool(spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": pools.API_VERSION,
        "kind": pools.KIND,
        "metadata": {"name": "broken", "namespace": "ns", "uid": "u-1", "generation": generation},
        "spec": spec,
    }


async def test_an_invalid_pool_is_reported_then_runs_once_fixed() -> None:
    api, fleet, recorder = FakeApi(), FakeFleet(), FakeRecorder()
    controller = pooling.PoolController(
        api,  # type: ignore[arg-type]
        fleet=fleet,
        recorder=recorder,  # type: ignore[arg-type]
        connection=pools.WorkerConnection(url="ws://workpath.ns.svc:7740/v1/workers"),
    )
    controller.start()
    try:
        bad = {"image": "w:1", "modules": ["m"], "routines": ["a.*"], "minReplicas": 5, "maxReplicas": 2}
        controller.observe_pool("ADDED", pool(bad))
        assert await controller.settled(5)
        ((method, path, patch),) = api.requests
        assert (method, path) == ("PATCH", "/apis/workpath.dev/v1alpha1/namespaces/ns/workerpools/broken/status")
        conditions = {c["type"]: c for c in patch[0]["value"]["conditions"]}
        assert conditions["InvalidSpec"]["status"] == "True"
        assert "minReplicas (5) must not exceed maxReplicas (2)" in conditions["InvalidSpec"]["message"]
        assert conditions["Ready"]["status"] == "False"
        assert recorder.events == [("Warning", "InvalidSpec", conditions["InvalidSpec"]["message"])]
        assert fleet.declared == {}  # an invalid pool serves nothing

        controller.observe_pool("MODIFIED", pool(bad, generation=1))  # the same again: nothing new is written
        assert await controller.settled(5)
        assert len(api.requests) == 1 and len(recorder.events) == 1

        controller.observe_pool("MODIFIED", pool(bad | {"minReplicas": 0}, generation=2))
        await waiting.eventually(lambda: any(m == "POST" for m, _, _ in api.requests), what="the Deployment")
        assert await controller.settled(5)
        created = next(body for m, _, body in api.requests if m == "POST")
        assert created["metadata"]["name"] == "broken-workers"
        assert fleet.declared == {"broken": {"a.*"}}
        status = api.requests[-1][2][0]["value"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["InvalidSpec"]["status"] == "False"
        assert status["observedGeneration"] == 2
    finally:
        await controller.close()
