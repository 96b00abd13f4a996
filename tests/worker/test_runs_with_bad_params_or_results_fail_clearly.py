"""Params that do not fit the signature, and results that cannot be sent, fail the run (not retryable)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pydantic
import pytest

import workpath
from tests.worker import fakes
from workpath import directives, errors, working


@workpath.routine("unit.build")
async def build(ctx: workpath.Context, month: str, n: int = 1, *, dry_run: bool = False) -> dict[str, Any]:
    return {"month": month}


@workpath.routine("unit.anything")
def anything(ctx: workpath.Context, **params: Any) -> Any:
    return params


@workpath.routine("unit.returns")
async def returns(ctx: workpath.Context, kind: str) -> Any:
    return RESULTS[kind]


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Reading(pydantic.BaseModel):
    at: datetime.datetime
    value: float


RESULTS: dict[str, Any] = {
    "object": object(),
    "set": {1},
    "dataclass": Point(1, 2),
    "model": Reading(at=datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC), value=1.5),
    "huge": "x" * 5000,
}


def test_fitting_params_pass() -> None:
    build.check_params({"month": "2026-10"})
    build.check_params({"month": "2026-10", "n": 2, "dry_run": True})
    anything.check_params({"a": 1, "b": 2})


@pytest.mark.parametrize(
    ("params", "problems"),
    [
        ({}, "missing required params: month"),
        ({"month": "x", "year": 2026, "colour": "red"}, "unexpected params: colour, year"),
        ({"n": 2, "typo": 1}, "missing required params: month; unexpected params: typo"),
        ({"month": "x", "ctx": 1}, "unexpected params: ctx"),
    ],
)
def test_params_that_do_not_fit_name_the_problem(params: dict[str, Any], problems: str) -> None:
    with pytest.raises(errors.InvalidParamsError) as info:
        build.check_params(params)
    assert str(info.value) == (
        f"routine 'unit.build' cannot take these params: {problems} (it accepts: dry_run, month, n)"
    )


def test_a_routine_taking_any_params_still_refuses_the_context_name() -> None:
    with pytest.raises(
        errors.InvalidParamsError, match=r"unexpected params: ctx .*it accepts: none and any other name"
    ):
        anything.check_params({"ctx": 1})


async def test_the_worker_fails_a_run_whose_params_do_not_fit() -> None:
    async with fakes.fake_service() as service, fakes.running(working.Worker(fakes.worker_settings(service), [build])):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.build", "run-1", mnth="2026-10"))
        failed = await connection.expect(directives.RoutineFailed)
    assert failed.error.type == "InvalidParamsError"
    assert not failed.error.retryable
    assert "missing required params: month; unexpected params: mnth" in failed.error.message


async def run_returning(kind: str, **settings: Any) -> directives.Payload:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service, **settings), [returns])),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.returns", "run-1", kind=kind))
        await connection.expect(directives.RoutineStarting)
        return await connection.frames.get()


@pytest.mark.parametrize(("kind", "type_name"), [("object", "builtins.object")])
async def test_a_result_that_is_not_json_fails_the_run_naming_its_type(kind: str, type_name: str) -> None:
    failed = await run_returning(kind)
    assert isinstance(failed, directives.RoutineFailed)
    assert failed.error.type == "InvalidResultError"
    assert not failed.error.retryable
    assert f"routine 'unit.returns' returned a {type_name} that is not JSON-serialisable" in failed.error.message


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("set", [1]),
        ("dataclass", {"x": 1, "y": 2}),
        ("model", {"at": "2026-10-01T00:00:00Z", "value": 1.5}),
    ],
)
async def test_results_pydantic_can_serialise_are_sent(kind: str, expected: Any) -> None:
    completed = await run_returning(kind)
    assert isinstance(completed, directives.RoutineCompleted)
    assert completed.result == expected


async def test_a_result_over_the_frame_limit_fails_the_run() -> None:
    failed = await run_returning("huge", max_message_size=4096)
    assert isinstance(failed, directives.RoutineFailed)
    assert failed.error.type == "InvalidResultError"
    assert "is too large" in failed.error.message and "WORKPATH_MAX_MESSAGE_SIZE" in failed.error.message
