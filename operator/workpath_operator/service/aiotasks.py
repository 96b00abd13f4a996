"""Stopping the long-running tasks the control plane starts: cancel, then wait until they have ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger("workpath.tasks")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel ``tasks`` (None is skipped) and wait for all of them; a task's own failure is logged.

    Unlike ``with suppress(CancelledError): await task``, a cancellation of the caller is not swallowed.
    """
    stopping = [task for task in tasks if task is not None]
    for task in stopping:
        task.cancel()
    results = await asyncio.gather(*stopping, return_exceptions=True)
    for task, result in zip(stopping, results, strict=True):
        if isinstance(result, Exception):
            logger.error("task %s failed while stopping: %r", task.get_name(), result)
