"""The write queue's barrier: it resolves once every key changed before it was made has had its work finish after
that change, and waits for nothing changed after it. Work retried (``add_later``) or deferred holds it until done;
work that fails for good, or raises, lets it go; a queue that closes cancels it."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import pytest

from tests import waiting
from workpath_operator.kube import coalescing

# Retry delays run on the loop's fake, fast-forwarded clock.
pytestmark = pytest.mark.looptime


class Writes:
    """Work on keys that waits for a key's gate when it is closed; each key's finished writes are counted."""

    def __init__(self) -> None:
        self.done: collections.Counter[str] = collections.Counter()
        self.active: set[str] = set()
        self.gates: dict[str, asyncio.Event] = {}
        #: Keys whose next write fails and is retried after a delay, or raises.
        self.retry: set[str] = set()
        self.boom: set[str] = set()
        self.queue: coalescing.CoalescingQueue[str] | None = None

    def hold(self, key: str) -> None:
        self.gates[key] = asyncio.Event()

    def release(self, key: str) -> None:
        self.gates.pop(key).set()

    async def process(self, key: str) -> None:
        self.active.add(key)
        try:
            gate = self.gates.get(key)
            if gate is not None:
                await gate.wait()
        finally:
            self.active.discard(key)
        if key in self.boom:
            self.boom.discard(key)
            raise RuntimeError("a write that fails for good")
        if key in self.retry:
            self.retry.discard(key)
            assert self.queue is not None
            self.queue.add_later(key, 1.0)
            return
        self.done[key] += 1


@pytest.fixture
async def writes() -> AsyncIterator[Writes]:
    writes = Writes()
    queue = writes.queue = coalescing.CoalescingQueue(writes.process, workers=4, name="test")
    queue.start()
    yield writes
    await queue.close()


def queue_of(writes: Writes) -> coalescing.CoalescingQueue[str]:
    assert writes.queue is not None
    return writes.queue


async def test_a_barrier_with_nothing_to_write_resolves_at_once(writes: Writes) -> None:
    queue = queue_of(writes)
    assert queue.barrier().done()
    queue.add("a")
    assert await queue.join(1.0)
    assert queue.barrier().done()


async def test_a_barrier_waits_for_keys_changed_before_it_and_not_after(writes: Writes) -> None:
    queue = queue_of(writes)
    writes.hold("a")
    writes.hold("b")
    queue.add("a")
    barrier = queue.barrier()
    queue.add("b")  # after the barrier: not waited for
    await waiting.eventually(lambda: writes.active == {"a", "b"})
    assert not barrier.done()
    writes.release("a")
    await asyncio.wait_for(barrier, 1.0)
    assert writes.done == {"a": 1}
    assert not queue.barrier().done()  # b is still being written
    writes.release("b")
    await asyncio.wait_for(queue.barrier(), 1.0)


async def test_a_change_during_a_write_is_waited_for_in_the_next_write(writes: Writes) -> None:
    queue = queue_of(writes)
    writes.hold("a")
    queue.add("a")
    await waiting.eventually(lambda: "a" in writes.active)
    before = queue.barrier()
    queue.add("a")  # the write in flight may not hold this change
    after = queue.barrier()
    writes.release("a")
    writes.hold("a")  # the next write waits
    await asyncio.wait_for(before, 1.0)
    await waiting.eventually(lambda: "a" in writes.active)
    await asyncio.sleep(0.1)
    assert not after.done(), "resolved by the write that started before the change"
    writes.release("a")
    await asyncio.wait_for(after, 1.0)
    assert writes.done == {"a": 2}


async def test_a_retried_write_holds_the_barrier_until_the_retry_is_done(writes: Writes) -> None:
    queue = queue_of(writes)
    loop = asyncio.get_running_loop()
    writes.retry.add("a")
    started = loop.time()
    queue.add("a")
    barrier = queue.barrier()
    await waiting.eventually(lambda: "a" not in writes.retry)
    assert not barrier.done()
    await asyncio.wait_for(barrier, 5.0)
    assert writes.done == {"a": 1}
    assert loop.time() - started == pytest.approx(1.0, abs=0.01)


async def test_a_change_during_a_write_that_is_retried_is_done_by_the_retry(writes: Writes) -> None:
    queue = queue_of(writes)
    writes.hold("a")
    writes.retry.add("a")
    queue.add("a")
    await waiting.eventually(lambda: "a" in writes.active)
    queue.add("a")
    barrier = queue.barrier()
    writes.release("a")  # fails, retried after a second; the change made meanwhile rides along
    await asyncio.wait_for(barrier, 5.0)
    assert writes.done == {"a": 1}


async def test_a_write_that_fails_for_good_lets_the_barrier_go(writes: Writes) -> None:
    queue = queue_of(writes)
    writes.boom.add("a")
    queue.add("a")
    await asyncio.wait_for(queue.barrier(), 1.0)
    assert not writes.done


async def test_a_deferred_key_holds_the_barrier_until_it_is_added_again(writes: Writes) -> None:
    queue = queue_of(writes)
    queue.defer("a")  # waits for something else (a sub-routine for its parent's Routine)
    barrier = queue.barrier()
    await asyncio.sleep(1.0)
    assert not barrier.done()
    queue.add("a")
    await asyncio.wait_for(barrier, 1.0)
    assert writes.done == {"a": 1}


async def test_barriers_of_many_keys_resolve_in_order(writes: Writes) -> None:
    queue = queue_of(writes)
    barriers = []
    for n in range(1_000):
        writes.hold(f"k{n}")
        queue.add(f"k{n}")
        barriers.append(queue.barrier())
    for n in reversed(range(1_000)):
        writes.release(f"k{n}")  # the newest first: only the last barrier can go, once all are done
        await asyncio.sleep(0)
        assert not barriers[0].done() or n == 0
    await asyncio.wait_for(asyncio.gather(*barriers), 5.0)


async def test_closing_cancels_the_barriers_still_waiting() -> None:
    writes = Writes()
    queue = writes.queue = coalescing.CoalescingQueue(writes.process, workers=1, name="test")
    queue.start()
    writes.hold("a")
    queue.add("a")
    barrier = queue.barrier()
    await waiting.eventually(lambda: "a" in writes.active)
    await queue.close()  # the write in flight is cancelled, not done
    assert barrier.cancelled()
