"""``ctx.log`` lines are captured per run, as the service receives them, from the loop and from threads."""

from __future__ import annotations

import logging

import workpath
from workpath import testing


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@workpath.routine("unit.chatty")
async def chatty(ctx: workpath.Context) -> None:
    ctx.log.debug("details", step=1)
    ctx.log.info("working", month="2026-10", odd=Opaque())
    ctx.log.warning("slow")
    await ctx.call("unit.quiet_part")


@workpath.routine("unit.quiet_part")
def quiet_part(ctx: workpath.Context) -> None:
    ctx.log.error("from a thread", n=1)


async def test_lines_carry_level_message_and_json_fields() -> None:
    run = testing.RoutineEnvironment([quiet_part]).start(chatty)
    outcome = await run.wait()
    assert [(line.level, line.message, dict(line.fields)) for line in outcome.logs] == [
        ("debug", "details", {"step": 1}),
        # a field is not JSON: the line's fields arrive as their reprs, as on the wire
        ("info", "working", {"month": "'2026-10'", "odd": "<opaque>"}),
        ("warning", "slow", {}),
    ]
    assert outcome.logs == tuple(run.logs)


async def test_a_sub_run_keeps_its_own_lines_even_from_a_thread() -> None:
    env = testing.RoutineEnvironment([quiet_part])
    await env.run(chatty)
    (request,) = env.requests
    assert [(line.level, line.message, dict(line.fields)) for line in request.run.logs] == [
        ("error", "from a thread", {"n": 1})
    ]


async def test_log_level_leaves_out_lower_lines_and_the_logger_is_restored() -> None:
    logger = logging.getLogger("workpath.routine")
    before = logger.level
    outcome = await testing.RoutineEnvironment([quiet_part], log_level="warning").start(chatty).wait()
    assert [line.message for line in outcome.logs] == ["slow"]
    assert logger.level == before
