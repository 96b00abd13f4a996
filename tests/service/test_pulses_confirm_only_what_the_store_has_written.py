"""A pulse check confirms a worker's frames only once the store has written their effects: each heartbeat round notes
what was read and asks the store for a barrier; the next round's pulse confirms what the last resolved barrier
covers. With a store written at once nothing lags; a draining worker gets its pulse as soon as its barrier resolves;
a barrier that resolves after a reconnect confirms nothing on the new connection, and one cancelled confirms nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching, heartbeating, sessions, settings, stores


class HeldStore(stores.MemoryRunStore):
    """A store whose barriers resolve only when the test says the writes are done."""

    def __init__(self) -> None:
        super().__init__()
        self.barriers: list[asyncio.Future[None]] = []

    def barrier(self) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self.barriers.append(future)
        return future

    def written(self) -> None:
        """Every barrier asked for so far resolves."""
        for future in self.barriers:
            if not future.done():
                future.set_result(None)


class Service:
    """A dispatcher, its heartbeat and a fake worker, on a given store."""

    def __init__(self, store: stores.MemoryRunStore) -> None:
        self.store = store
        config = settings.ServiceSettings(heartbeat_misses=100)
        self.dispatcher = dispatching.Dispatcher(settings=config, observer=store)
        self.heartbeat = heartbeating.Heartbeat(
            roster=self.dispatcher.roster, store=store, settings=config, close=lambda ws, why: None
        )
        self.workers = fakes.FakeWorkers(self.dispatcher)

    async def finished_run(self, worker: sessions.WorkerSession) -> None:
        """A run is dispatched to ``worker``, which reports it starting and completed (frames 1 and 2)."""
        self.dispatcher.submit(fakes.spec())
        (start,) = await self.workers.starts(worker)
        worker.frame_received()
        worker.frame_received()
        self.workers.complete(worker, start)

    async def pulses(self, worker: sessions.WorkerSession) -> list[int]:
        """The ``received`` of each pulse check sent since the last look (each one answered)."""
        checks = [p for p in await self.workers.sent(worker) if isinstance(p, directives.CheckPulse)]
        for check in checks:
            worker.frame_received()
            self.heartbeat.pulse_given(worker, directives.GivePulse(id=check.id), 0)
        return [check.received for check in checks]


@pytest.fixture
async def held() -> AsyncIterator[Service]:
    service = Service(HeldStore())
    yield service
    await service.workers.close()


def held_store(service: Service) -> HeldStore:
    assert isinstance(service.store, HeldStore)
    return service.store


async def test_with_a_store_written_at_once_a_pulse_confirms_every_frame_read() -> None:
    service = Service(stores.MemoryRunStore())
    worker = service.workers.attach("w1")
    try:
        await service.finished_run(worker)
        service.heartbeat.check_pulses()
        assert await service.pulses(worker) == [3]  # v1.ready, starting, completed
    finally:
        await service.workers.close()


async def test_a_report_is_confirmed_by_the_round_after_its_barrier_resolved(held: Service) -> None:
    worker = held.workers.attach("w1")
    await held.finished_run(worker)
    held.heartbeat.check_pulses()
    assert await held.pulses(worker) == [0], "confirmed before the store wrote it"
    held.heartbeat.check_pulses()
    assert await held.pulses(worker) == [0], "pulses go on (liveness), confirming nothing new"
    held_store(held).written()
    await asyncio.sleep(0)  # the barriers' callbacks
    assert worker.confirmable == 4  # read before the second round: the first pulse's answer too
    held.heartbeat.check_pulses()
    assert await held.pulses(worker) == [4]


async def test_a_draining_worker_gets_its_pulse_once_its_reports_are_written(held: Service) -> None:
    worker = held.workers.attach("w1")
    await held.finished_run(worker)
    worker.frame_received()
    held.heartbeat.pulse_given(worker, directives.GivePulse(status="draining"), 0)
    assert await held.pulses(worker) == []
    held_store(held).written()
    await asyncio.sleep(0)
    assert await held.pulses(worker) == [4]


async def test_a_barrier_resolved_after_a_reconnect_confirms_nothing_on_the_new_connection(held: Service) -> None:
    worker = held.workers.attach("w1")
    await held.finished_run(worker)
    held.heartbeat.check_pulses()
    await held.pulses(worker)
    held.dispatcher.roster.detach(worker, worker.ws)  # type: ignore[arg-type]
    worker = held.workers.attach("w1")  # its frames are counted from its new v1.ready
    held_store(held).written()
    await asyncio.sleep(0)
    assert worker.confirmable == 0


async def test_a_cancelled_barrier_confirms_nothing(held: Service) -> None:
    worker = held.workers.attach("w1")
    await held.finished_run(worker)
    held.heartbeat.check_pulses()
    for barrier in held_store(held).barriers:
        barrier.cancel()
    await asyncio.sleep(0)
    assert worker.confirmable == 0
