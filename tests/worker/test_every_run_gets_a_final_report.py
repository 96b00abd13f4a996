"""Every run the worker ends gets a final report: a bad retry delay or an unreportable error fails it."""

from __future__ import annotations

import asyncio
import math

import pytest

import workpath
from tests.worker import fakes
from workpath import directives, errors, reporting, working


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words for it")


@workpath.routine("unit.fails_with")
async def fails_with(ctx: workpath.Context, kind: str) -> str:
    if kind == "negative_delay":
        raise workpath.TemporaryError("try later", delay=-1)
    if kind == "delay_changed_after_raise":
        error = workpath.TemporaryError("try later", delay=1)
        error.delay = -1  # nothing checks it here: the report cannot carry it
        raise error
    if kind == "unprintable":
        raise Unprintable
    if kind == "huge_message":
        raise workpath.PermanentError("x" * 5000)
    return "fine"


@pytest.mark.parametrize("delay", [-1, -0.001, math.inf, -math.inf, math.nan, True, "5"])
def test_a_temporary_error_refuses_a_delay_that_is_not_seconds_to_wait(delay: object) -> None:
    with pytest.raises(ValueError, match=r"TemporaryError delay must be a finite number of seconds >= 0") as info:
        errors.TemporaryError("try later", delay=delay)  # type: ignore[arg-type]
    assert repr(delay) in str(info.value)


@pytest.mark.parametrize("delay", [None, 0, 0.5, 30])
def test_a_temporary_error_keeps_a_delay_that_is_seconds_to_wait(delay: float | None) -> None:
    assert errors.TemporaryError("try later", delay=delay).delay == delay


async def reports_of(kind: str, **settings: object) -> tuple[directives.Payload, directives.Payload]:
    """The final report of a ``unit.fails_with`` run as ``kind``, and that of a run after it on the same worker."""
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, **settings), [fails_with])
        async with fakes.running(worker):
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.fails_with", "run-1", kind=kind))
            await connection.expect(directives.RoutineStarting)
            first = await final_report(connection)
            await connection.send(fakes.start("unit.fails_with", "run-2", kind="none"))
            await connection.expect(directives.RoutineStarting)
            second = await final_report(connection)
    return first, second


async def final_report(connection: fakes.FakeConnection) -> directives.Payload:
    """The next directive that is not a log line (the traceback of an unexpected error comes first)."""
    async with asyncio.timeout(fakes.TIMEOUT):
        while isinstance(payload := await connection.frames.get(), directives.Log):
            pass
    return payload


async def test_a_negative_delay_fails_the_run_with_a_clear_value_error() -> None:
    failed, after = await reports_of("negative_delay")
    assert isinstance(failed, directives.RoutineFailed) and failed.run_id == "run-1"
    assert failed.error.type == "ValueError"
    assert "TemporaryError delay must be a finite number of seconds >= 0 or None, got -1" in failed.error.message
    assert not failed.error.retryable and failed.error.delay is None
    assert isinstance(after, directives.RoutineCompleted) and after.result == "fine"


@pytest.mark.parametrize("kind", ["delay_changed_after_raise", "unprintable"])
async def test_an_error_that_cannot_be_reported_fails_the_run_as_a_report_error(kind: str) -> None:
    failed, after = await reports_of(kind)
    assert isinstance(failed, directives.RoutineFailed) and failed.run_id == "run-1"
    assert failed.error.type == "ReportError" == errors.ReportError.__name__
    assert failed.error.message.startswith("the worker could not report how the run ended (")
    assert not failed.error.retryable
    assert isinstance(after, directives.RoutineCompleted)


async def test_an_error_report_over_the_frame_limit_fails_the_run_as_a_report_error() -> None:
    failed, after = await reports_of("huge_message", max_message_size=1024)
    assert isinstance(failed, directives.RoutineFailed)
    assert failed.error.type == "ReportError"
    assert "over 1024 (WORKPATH_MAX_MESSAGE_SIZE)" in failed.error.message
    assert len(directives.encode(failed).encode()) <= 1024
    assert isinstance(after, directives.RoutineCompleted)


def test_a_long_error_message_is_truncated_on_the_wire() -> None:
    info = reporting.error_info(ValueError("x" * (reporting.MAX_ERROR_MESSAGE + 1)))
    assert info.message == "x" * reporting.MAX_ERROR_MESSAGE + "... (truncated)"
    assert (info.type, info.retryable, info.delay) == ("ValueError", False, None)


def test_an_unknown_routine_error_lists_at_most_twenty_loaded_routines() -> None:
    known = [directives.RoutineID(f"unit.r{n:02d}") for n in range(25)]
    message = reporting.not_found_message(
        directives.RoutineID("unit.missing"), worker_id=directives.WorkerID("w-1"), known=reversed(known)
    )
    assert message == (
        f"routine 'unit.missing' is not loaded on worker w-1 (it has: {', '.join(known[:20])} and 5 more)"
    )
