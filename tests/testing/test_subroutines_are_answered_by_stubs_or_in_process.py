"""Sub-routine calls are answered by the test's stubs, or by registered routines run in-process."""

from __future__ import annotations

from typing import Any

import pytest

import workpath
from workpath import testing


@workpath.routine("unit.total")
async def total(ctx: workpath.Context, parts: int = 3) -> int:
    results = await ctx.gather(*(ctx.call("unit.part", n=n) for n in range(parts)))
    return sum(int(r["rows"]) for r in results)


@workpath.routine("unit.part")
def part(ctx: workpath.Context, n: int) -> dict[str, Any]:
    return {"rows": n * 10, "parent": ctx.parent_run_id}


@workpath.routine("unit.relay")
async def relay(ctx: workpath.Context, target: str, **params: Any) -> Any:
    """Calls ``target`` with ``params`` and returns what it answered, or the failure it raised."""
    try:
        return await ctx.call(target, **params)
    except workpath.RoutineFailedError as exc:
        return {"routine_id": exc.routine_id, "type": exc.type, "message": exc.message, "retryable": exc.retryable}


@workpath.routine("unit.sync_relay")
def sync_relay(ctx: workpath.Context, n: int) -> Any:
    return ctx.call_sync(part, n=n)


@workpath.routine("unit.with_options")
async def with_options(ctx: workpath.Context) -> Any:
    return await ctx.call_with("unit.part", {"n": 1}, timeout_seconds=30, pool="big")


async def test_registered_routines_answer_in_process_with_their_own_contexts() -> None:
    env = testing.RoutineEnvironment([total, part])
    run = env.start(total)
    assert await run.result() == 0 + 10 + 20
    assert [(r.routine_id, dict(r.params)) for r in env.requests] == [("unit.part", {"n": n}) for n in range(3)]
    assert all(r.parent_run_id == run.run_id for r in env.requests)
    assert [r.run.outcome.result["parent"] for r in env.requests if r.run.outcome] == [run.run_id] * 3
    assert run.requests == list(env.requests)


async def test_sub_routines_run_in_process_recursively() -> None:
    env = testing.RoutineEnvironment([relay, total, part])
    assert await env.run(relay, target="unit.total", parts=2) == 10
    assert [r.routine_id for r in env.requests] == ["unit.total", "unit.part", "unit.part"]


async def test_a_plain_routine_calls_with_call_sync() -> None:
    run = testing.RoutineEnvironment([part]).start(sync_relay, n=4)
    assert await run.result() == {"rows": 40, "parent": run.run_id}


async def test_a_call_records_its_options() -> None:
    env = testing.RoutineEnvironment([part])
    await env.run(with_options)
    (request,) = env.requests
    assert (request.timeout_seconds, request.pool) == (30, "big")


async def rows_later(n: int) -> dict[str, int]:
    return {"rows": n + 7}


@pytest.mark.parametrize(
    "answer", [{"rows": 7}, lambda n: {"rows": n + 7}, rows_later], ids=["value", "callable", "async-callable"]
)
async def test_a_stub_answers_with_a_value_or_a_callable(answer: Any) -> None:
    env = testing.RoutineEnvironment([total, part], stubs={"unit.part": answer})  # the stub wins
    assert await env.run(total, parts=1) == 7
    (request,) = env.requests
    assert request.run.outcome is not None and request.run.outcome.result == {"rows": 7}


async def test_a_stub_exception_fails_the_call_as_on_the_wire() -> None:
    env = testing.RoutineEnvironment()
    env.stub("unit.part", workpath.TemporaryError("busy", delay=1))
    env.stub("unit.other", KeyError)
    assert await env.run(relay, target="unit.part", n=1) == {
        "routine_id": "unit.part",
        "type": "TemporaryError",
        "message": "busy",
        "retryable": True,
    }
    failed = await env.run(relay, target="unit.other")
    assert (failed["type"], failed["retryable"]) == ("KeyError", False)


async def test_an_unknown_sub_routine_fails_the_call_as_on_a_worker() -> None:
    failed = await testing.RoutineEnvironment([part]).run(relay, target="unit.nowhere")
    assert failed["type"] == "RoutineNotFoundError"
    assert not failed["retryable"]
    assert "routine 'unit.nowhere' is not loaded on worker test-worker" in failed["message"]


async def test_sub_routine_params_are_checked_as_on_a_worker() -> None:
    failed = await testing.RoutineEnvironment([part]).run(relay, target="unit.part", m=1)
    assert failed["type"] == "InvalidParamsError"
    assert "missing required params: n; unexpected params: m" in failed["message"]


async def test_a_failed_part_fails_the_gather_and_the_parent() -> None:
    env = testing.RoutineEnvironment([total], stubs={"unit.part": workpath.PermanentError("no data")})
    with pytest.raises(testing.RunFailedError, match=r"RoutineFailedError: sub-routine 'unit.part' failed") as caught:
        await env.run(total, parts=1)
    assert isinstance(caught.value.__cause__, workpath.RoutineFailedError)
    assert not caught.value.retryable
