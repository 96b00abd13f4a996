"""A connection's input rate (``max_frames_per_second``) counts directives, not frames: a worker sending its
directives in batch frames is held to the same rate as one sending them one per frame. Held back, nothing is lost:
the service reads on in the next window, and the connection stays up.

The service here takes 40 directives a second. A worker's answers to pulse checks wait with the rest of what it
sent, so the service checks pulses slowly enough (5 misses of 1 s) not to lose a worker it holds back for 2 s.
"""

from __future__ import annotations

import asyncio

import pytest

from tests import waiting
from tests.integration import rawworkers
from workpath import directives
from workpath_operator.service import serving, settings

RATE = 40
BATCHES = 3
BATCH = 30  # 90 directives in 3 frames: over two windows' worth of directives, far under one's worth of frames


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    return service_settings.replace(max_frames_per_second=RATE, heartbeat_interval=1.0, heartbeat_misses=5)


async def test_directives_in_batches_are_throttled_and_none_is_lost(service: serving.DirectiveService) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(6), rawworkers.connected(service, "hasty", batching=True, slots=1) as worker:
        status = directives.encode(directives.GivePulse(status="idle"))  # no answer, no effect: only counted
        sent_at = loop.time()
        for _ in range(BATCHES):
            await worker.ws.send_str(directives.encode_batch([status] * BATCH))
        assert await worker.errors_until_a_barrier() == []
        assert loop.time() - sent_at >= 0.9  # it waited for the next window at least

        def everything_confirmed() -> bool:
            # Read before a pulse check: the batch of v1.ready, the answers to earlier checks, the 90, the barrier.
            return any(received == 1 + answered + BATCHES * BATCH + 1 for received, answered in worker.confirmations)

        await waiting.eventually(everything_confirmed, timeout=3.0, what="a pulse confirming every directive")
        assert not worker.ws.closed
        assert service.dispatcher.sessions[worker.worker_id].connected
