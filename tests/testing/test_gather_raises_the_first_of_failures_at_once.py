"""``ctx.gather`` over calls that fail together raises the first one's error and leaves none unretrieved."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any

import pytest

import workpath
from workpath import testing


@workpath.routine("unit.fan")
async def fan(ctx: workpath.Context, parts: int) -> list[Any]:
    return await ctx.gather(*(ctx.call("unit.part", n=n) for n in range(parts)))


def failing_part(n: int) -> None:
    raise workpath.PermanentError(f"part {n} failed")


def test_calls_failing_together_raise_the_first_and_leave_none_unretrieved() -> None:
    error, reported = run_watched(fan_out_failing(3))
    assert error == ("RoutineFailedError", "sub-routine 'unit.part' failed: PermanentError: part 0 failed")
    assert [context["message"] for context in reported] == []


def test_gather_of_calls_that_all_succeed_keeps_their_order() -> None:
    env = testing.RoutineEnvironment(stubs={"unit.part": lambda n: n * 10})
    assert run_watched(env.run(fan, parts=4)) == ([0, 10, 20, 30], [])


async def fan_out_failing(parts: int) -> tuple[str, str]:
    """Run ``unit.fan`` over parts that all fail; return its error's type and message."""
    env = testing.RoutineEnvironment(stubs={"unit.part": failing_part})
    with pytest.raises(testing.RunFailedError) as failed:
        await env.run(fan, parts=parts)
    # All parts failed in the same loop step: none was cancelled by the first failure.
    assert [request.run.outcome and request.run.outcome.cancelled for request in env.requests] == [False] * parts
    return failed.value.type, failed.value.message


def run_watched[T](main: Coroutine[Any, Any, T]) -> tuple[T, list[dict[str, Any]]]:
    """Run ``main`` on a new event loop; return its result and what the loop reported to its exception handler.

    A failed task nobody asked for its exception says so ("Task exception was never
    retrieved") when it is collected, which is once its loop has run its last callbacks.
    """
    reported: list[dict[str, Any]] = []

    def new_loop() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        return loop

    result = asyncio.run(main, loop_factory=new_loop)
    gc.collect()
    return result, reported
