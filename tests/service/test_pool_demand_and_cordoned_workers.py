"""Worker pools in the dispatcher: what each pool is asked for, why a run waits, and workers let go idle-first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.service import fakes
from workpath_operator.service import dispatching, runs, scaling, settings, stores


@pytest.fixture
async def dispatcher() -> dispatching.Dispatcher:
    return dispatching.Dispatcher(settings=settings.ServiceSettings(), observer=stores.MemoryRunStore())


@pytest.fixture
async def workers(dispatcher: dispatching.Dispatcher) -> AsyncIterator[fakes.FakeWorkers]:
    fleet = fakes.FakeWorkers(dispatcher)
    yield fleet
    await fleet.close()


def spec(routine: str = "reports.build", **kwargs: object) -> runs.RunSpec:
    return runs.RunSpec.model_validate({"routineID": routine, **kwargs})


async def test_a_run_nobody_can_serve_says_why_until_a_pool_is_declared(dispatcher: dispatching.Dispatcher) -> None:
    changed: list[str] = []
    dispatcher.pools.on_demand(changed.append)
    run = dispatcher.submit(spec())
    assert run.reason == runs.Reason.NO_WORKER
    assert "reports.build" in run.message and "no WorkerPool serves it" in run.message
    assert dispatcher.pools.pool_demand("reports").queued == 0

    dispatcher.pools.declare_pools({"reports": ["reports.*"], "etl": ["etl.*"]})
    assert run.reason == runs.Reason.QUEUED
    assert run.message == "waiting for a worker of pool 'reports'"
    assert dispatcher.pools.pool_demand("reports").queued == 1
    assert dispatcher.pools.pool_demand("etl").queued == 0
    assert changed == ["reports"]

    dispatcher.pools.declare_pools({})
    assert run.reason == runs.Reason.NO_WORKER
    assert dispatcher.pools.pool_demand("reports").queued == 0


async def test_queued_and_running_follow_dispatch_and_completion(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    dispatcher.pools.declare_pools({"reports": ["reports.*"]})
    for _ in range(3):
        dispatcher.submit(spec())
    assert dispatcher.pools.pool_demand("reports") == scaling.Demand(queued=3, running=0)
    worker = workers.attach("reports-1", slots=2, routines=("reports.*",), pool="reports")
    starts = await workers.starts(worker)
    assert len(starts) == 2
    assert dispatcher.pools.pool_demand("reports") == scaling.Demand(queued=1, running=2)
    assert dispatcher.pools.pool_workers("reports") == {"reports-1": (2, True)}
    workers.complete(worker, starts[0])
    (third,) = await workers.starts(worker)
    assert dispatcher.pools.pool_demand("reports") == scaling.Demand(queued=0, running=2)
    workers.complete(worker, starts[1])
    workers.complete(worker, third)
    assert dispatcher.pools.pool_demand("reports") == scaling.Demand(queued=0, running=0)


async def test_a_cordoned_worker_gets_no_new_runs_until_uncordoned(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    going = workers.attach("going", slots=4, routines=("reports.*",), pool="reports")
    dispatcher.pools.cordon("going", cordoned=True)
    run = dispatcher.submit(spec())
    assert run.queued and not await workers.starts(going)
    staying = workers.attach("staying", slots=4, routines=("reports.*",), pool="reports")
    assert [s.run_id for s in await workers.starts(staying)] == [run.run_id]

    second = dispatcher.submit(spec())
    assert [s.run_id for s in await workers.starts(staying)] == [second.run_id]
    dispatcher.pools.cordon("going", cordoned=False)
    third = dispatcher.submit(spec())
    assert [s.run_id for s in await workers.starts(going)] + [s.run_id for s in await workers.starts(staying)] == [
        third.run_id
    ]
    dispatcher.pools.cordon("nobody", cordoned=True)  # a worker the service does not know: nothing happens


async def test_a_freed_slot_wakes_the_pool_so_it_can_scale_down(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    woken: list[str] = []
    dispatcher.pools.on_demand(woken.append)
    dispatcher.pools.declare_pools({"reports": ["reports.*"]})
    worker = workers.attach("reports-1", slots=1, routines=("reports.*",), pool="reports")
    dispatcher.submit(spec())
    (start,) = await workers.starts(worker)
    woken.clear()
    workers.complete(worker, start)  # the last run ends: nothing queued changes, but the load fell to zero
    assert "reports" in woken
    assert dispatcher.pools.pool_demand("reports") == scaling.Demand(queued=0, running=0)
