"""Waiting for a condition with a deadline, in async tests: the one ``eventually`` of the suite.

A test that has to wait polls the condition it means, often, and fails with what it waited for when the deadline
passes; it never sleeps a fixed time and hopes. Synchronous code (the test control plane's harness and the operator
tests that drive it) waits the same way with :func:`tests.cluster.waiting.wait_for`.

The deadline is in the running loop's time: under ``@pytest.mark.looptime`` it is fake time, like everything the
test waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Long enough for a real worker process to start and connect on a loaded 2-core machine; only a failure waits it.
TIMEOUT = 15.0
INTERVAL = 0.005


async def eventually[T](
    condition: Callable[[], T], *, timeout: float = TIMEOUT, what: str = "condition", interval: float = INTERVAL
) -> T:
    """Wait until ``condition()`` is truthy and return its value; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)
    return result
