"""A routine in the environment runs as on a worker: its context, threads, params and result checked the same way."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import types
from typing import Any

import pytest

import workpath
from workpath import testing


@workpath.routine("unit.double")
async def double(ctx: workpath.Context, value: int) -> int:
    return value * 2


@workpath.routine("unit.where")
def where(ctx: workpath.Context, tag: str = "") -> dict[str, Any]:
    """A plain function: it runs in a thread, and finds its context there."""
    return {
        "thread": threading.current_thread().name,
        "same_context": workpath.context() is ctx,
        "run_id": ctx.run_id,
        "attempt": ctx.attempt,
        "worker_id": ctx.worker_id,
        "params": dict(ctx.params),
        "has_deadline": ctx.deadline is not None,
    }


@dataclasses.dataclass
class Point:
    x: int
    y: int


@workpath.routine("unit.returns")
async def returns(ctx: workpath.Context, kind: str) -> object:
    return {"point": Point(1, 2), "tuple": (1, 2), "object": object(), "huge": "x" * 5000}[kind]


async def test_an_async_routine_returns_its_result() -> None:
    assert await testing.RoutineEnvironment().run(double, value=21) == 42


async def test_a_plain_routine_runs_in_a_thread_with_its_context() -> None:
    env = testing.RoutineEnvironment(worker_id="unit-worker")
    seen = await env.start_with(where, {"tag": "a"}, attempt=3, timeout_seconds=30).result()
    assert seen["thread"] != threading.current_thread().name
    assert seen["same_context"]
    assert seen["run_id"].startswith("test-run-")
    assert (seen["attempt"], seen["worker_id"], seen["params"], seen["has_deadline"]) == (
        3,
        "unit-worker",
        {"tag": "a"},
        True,
    )


def test_run_sync_serves_a_plain_test() -> None:
    assert testing.RoutineEnvironment().run_sync(double, value=2) == 4


async def test_run_sync_refuses_to_block_an_event_loop() -> None:
    with pytest.raises(workpath.ContextError, match=r"await env.run"):
        testing.RoutineEnvironment().run_sync(double, value=2)


def test_start_needs_a_running_loop() -> None:
    with pytest.raises(workpath.ContextError, match=r"needs a running event loop"):
        testing.RoutineEnvironment().start(double, value=2)


async def test_a_routine_is_found_by_id_among_modules_and_module_names() -> None:
    module = types.ModuleType("unit_routines_for_testing")
    module.double = double  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        assert await testing.RoutineEnvironment([module]).run("unit.double", value=1) == 2
        assert await testing.RoutineEnvironment([module.__name__]).run("unit.double", value=2) == 4
    finally:
        del sys.modules[module.__name__]


async def test_params_arrive_as_json() -> None:
    seen = await testing.RoutineEnvironment().run(where, tag=("a", "b"))
    assert seen["params"] == {"tag": ["a", "b"]}


async def test_params_that_do_not_fit_fail_the_run_as_on_a_worker() -> None:
    env = testing.RoutineEnvironment()
    with pytest.raises(testing.RunFailedError, match=r"InvalidParamsError: .*missing required params: value") as caught:
        await env.run(double, valeu=1)
    assert caught.value.type == "InvalidParamsError"
    assert not caught.value.retryable
    assert isinstance(caught.value.__cause__, workpath.InvalidParamsError)
    assert "unexpected params: valeu" in caught.value.message


async def test_params_that_are_not_json_are_refused_at_once() -> None:
    with pytest.raises(workpath.InvalidParamsError, match=r"not JSON-serialisable"):
        testing.RoutineEnvironment().start(double, value=object())


async def test_an_unknown_routine_id_fails_as_on_a_worker() -> None:
    outcome = await testing.RoutineEnvironment([double]).start("unit.missing").wait()
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.retryable) == ("RoutineNotFoundError", False)
    assert "routine 'unit.missing' is not loaded on worker test-worker (it has: unit.double)" in outcome.error.message


@pytest.mark.parametrize(("kind", "expected"), [("point", {"x": 1, "y": 2}), ("tuple", [1, 2])])
async def test_the_result_is_what_the_service_receives(kind: str, expected: Any) -> None:
    assert await testing.RoutineEnvironment().run(returns, kind=kind) == expected


async def test_a_result_that_is_not_json_fails_the_run() -> None:
    outcome = await testing.RoutineEnvironment().start(returns, kind="object").wait()
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.retryable) == ("InvalidResultError", False)
    assert "returned a builtins.object that is not JSON-serialisable" in outcome.error.message
    assert isinstance(outcome.exception, workpath.WorkpathError)


async def test_a_result_over_the_message_size_fails_the_run() -> None:
    outcome = await testing.RoutineEnvironment(max_message_size=4096).start(returns, kind="huge").wait()
    assert outcome.error is not None
    assert outcome.error.type == "InvalidResultError"
    assert "is too large" in outcome.error.message


async def test_runs_of_one_environment_can_go_at_once() -> None:
    env = testing.RoutineEnvironment()
    results = await asyncio.gather(*(env.run(double, value=n) for n in range(5)))
    assert results == [0, 2, 4, 6, 8]
