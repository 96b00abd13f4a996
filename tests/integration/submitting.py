"""Submitting runs to the service under test, and waiting for them to finish."""

from __future__ import annotations

import asyncio

from workpath_operator.service import runs, serving

FINISH_TIMEOUT = 20.0


def submit(service: serving.DirectiveService, routine_id: str, **params: object) -> runs.Run:
    """A run of ``routine_id`` with these params, queued as the HTTP API or a Routine would queue it."""
    return service.dispatcher.submit(runs.RunSpec.model_validate({"routineID": routine_id, "params": params}))


async def finished(service: serving.DirectiveService, run: runs.Run, timeout: float = FINISH_TIMEOUT) -> runs.Run:
    """``run`` once it has finished, however it ended; fail after ``timeout`` seconds."""
    return await asyncio.wait_for(service.dispatcher.wait_finished(run), timeout)
