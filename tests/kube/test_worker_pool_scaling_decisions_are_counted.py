"""Each WorkerPool scaling decision is counted by namespace, pool and direction in ``/metrics``, and the Events
about WorkerPools are counted apart from those about Routines (without an API server)."""

from __future__ import annotations

from tests import scrapes
from tests.kube import test_worker_pool_controller_reports_invalid_pools as invalid_pools
from workpath_operator.kube import pooling, pools, recording
from workpath_operator.service import measures, scaling


class QueuedFleet(invalid_pools.FakeFleet):
    """A service with ``queued`` runs waiting for every pool."""

    queued = 3

    def pool_demand(self, pool: str) -> scaling.Demand:
        return scaling.Demand(queued=self.queued)


async def test_a_scale_up_is_counted_under_its_pool() -> None:
    api = invalid_pools.FakeApi()
    recorder = recording.EventRecorder(api, rate=0, burst=1)  # type: ignore[arg-type]
    controller = pooling.PoolController(
        api,  # type: ignore[arg-type]
        fleet=QueuedFleet(),
        recorder=recorder,
        connection=pools.WorkerConnection(url="ws://workpath.ns.svc:7740/v1/workers"),
    )
    board = measures.Board()
    controller.add_measures(board)
    controller.start()
    try:
        spec = {"image": "w:1", "modules": ["m"], "routines": ["a.*"], "slots": 1, "maxReplicas": 5}
        controller.observe_pool("ADDED", invalid_pools.pool(spec))
        assert await controller.settled(5)
    finally:
        await controller.close()

    values = scrapes.values(scrapes.page(board))
    assert values['workpath_scaling_decisions_total{direction="up",namespace="ns",pool="broken"}'] == 1
    assert values['workpath_events_dropped_total{object="WorkerPool"}'] == 1  # rate 0: the ScaledUp Event
    assert values['workpath_events_posted_total{object="WorkerPool"}'] == 0
