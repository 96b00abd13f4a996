"""Capturing ``ctx.log`` lines leaves the process's logging alone: each environment captures at its own level."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

import workpath
from workpath import testing

LOGGER = logging.getLogger("workpath.routine")
GATES: dict[str, asyncio.Event] = {}


@workpath.routine("unit.talks")
async def talks(ctx: workpath.Context, gate: str) -> int:
    ctx.log.debug("details")
    ctx.log.warning("careful")
    await GATES[gate].wait()
    return LOGGER.level


@pytest.fixture
def quiet_logger() -> Iterator[None]:
    """The ``workpath.routine`` logger lets only errors through, as a process's logging may say."""
    before = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        yield
    finally:
        LOGGER.setLevel(before)


@pytest.mark.usefixtures("quiet_logger")
async def test_environments_at_different_levels_capture_their_own_lines_at_once() -> None:
    GATES.update(chatty=asyncio.Event(), terse=asyncio.Event())
    chatty = testing.RoutineEnvironment(log_level="debug").start(talks, gate="chatty")
    terse = testing.RoutineEnvironment(log_level="warning").start(talks, gate="terse")
    GATES["chatty"].set()
    chatty_outcome = await chatty.wait()
    GATES["terse"].set()
    terse_outcome = await terse.wait()
    assert [line.message for line in chatty_outcome.logs] == ["details", "careful"]
    assert [line.message for line in terse_outcome.logs] == ["careful"]
    # The routines saw the logger as the process set it, and it is still so.
    assert chatty_outcome.result == terse_outcome.result == LOGGER.level == logging.ERROR
