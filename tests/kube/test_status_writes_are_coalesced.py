"""The operator's write queue: a burst of changes to one key is one piece of work, a key is never worked on twice
at once, a change during work is picked up afterwards, and no more than ``workers`` run at a time."""

from __future__ import annotations

import asyncio
import collections

import pytest

from tests import waiting
from workpath_operator.kube import coalescing

# Linger and retry delays are the subject: they run on the loop's fake, fast-forwarded clock.
pytestmark = pytest.mark.looptime


class Recorder:
    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.active: set[str] = set()
        self.most = 0
        self.release = asyncio.Event()
        self.release.set()

    async def process(self, key: str) -> None:
        assert key not in self.active, f"{key} processed twice at once"
        self.active.add(key)
        self.most = max(self.most, len(self.active))
        try:
            await self.release.wait()
        finally:
            self.active.discard(key)
        self.calls[key] += 1


async def test_a_burst_of_changes_to_one_key_is_one_write() -> None:
    recorder = Recorder()
    queue = coalescing.CoalescingQueue(recorder.process, workers=4, name="test")
    queue.start()
    try:
        for _ in range(100):
            queue.add("routine-a")
        assert await queue.join(2.0)
        assert recorder.calls == {"routine-a": 1}
    finally:
        await queue.close()


async def test_a_change_while_writing_is_written_once_more_after() -> None:
    recorder = Recorder()
    recorder.release.clear()
    queue = coalescing.CoalescingQueue(recorder.process, workers=4, name="test")
    queue.start()
    try:
        queue.add("routine-a")
        await waiting.eventually(lambda: "routine-a" in recorder.active)
        for _ in range(10):
            queue.add("routine-a")  # changed again while its first write is in flight
        assert queue.is_pending("routine-a")
        recorder.release.set()
        assert await queue.join(2.0)
        assert recorder.calls == {"routine-a": 2}
        assert recorder.most == 1
    finally:
        await queue.close()


async def test_at_most_workers_keys_are_processed_at_once() -> None:
    recorder = Recorder()
    recorder.release.clear()
    queue = coalescing.CoalescingQueue(recorder.process, workers=3, name="test")
    queue.start()
    try:
        for n in range(10):
            queue.add(f"routine-{n}")
        await waiting.eventually(lambda: len(recorder.active) == 3)
        await asyncio.sleep(0.01)
        assert len(recorder.active) == 3
        recorder.release.set()
        assert await queue.join(2.0)
        assert recorder.calls == {f"routine-{n}": 1 for n in range(10)}
    finally:
        await queue.close()


async def test_linger_lets_the_changes_right_after_the_first_join_it() -> None:
    recorder = Recorder()
    queue = coalescing.CoalescingQueue(recorder.process, workers=1, name="test", linger=0.5)
    queue.start()
    loop = asyncio.get_running_loop()
    try:
        added_at = loop.time()
        queue.add("routine-a")
        await asyncio.sleep(0.01)
        queue.add("routine-a")
        assert not recorder.calls
        assert await queue.join(2.0)
        assert recorder.calls == {"routine-a": 1}
        assert loop.time() - added_at == pytest.approx(0.5, abs=1e-3)  # written once the linger is over
    finally:
        await queue.close()


async def test_a_retry_comes_after_its_delay_and_join_waits_for_it() -> None:
    recorder = Recorder()
    queue = coalescing.CoalescingQueue(recorder.process, workers=1, name="test")
    queue.start()
    loop = asyncio.get_running_loop()
    try:
        added_at = loop.time()
        queue.add_later("routine-a", 0.05)
        assert not await queue.join(0.01)
        assert await queue.join(2.0)
        assert recorder.calls == {"routine-a": 1}
        assert loop.time() - added_at == pytest.approx(0.05, abs=1e-3)
    finally:
        await queue.close()


async def test_a_failing_write_does_not_stop_the_queue() -> None:
    done: list[str] = []

    async def process(key: str) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        done.append(key)

    queue = coalescing.CoalescingQueue(process, workers=1, name="test")
    queue.start()
    try:
        queue.add("bad")
        queue.add("good")
        assert await queue.join(2.0)
        assert done == ["good"]
    finally:
        await queue.close()
