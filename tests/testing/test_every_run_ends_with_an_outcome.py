"""A run in the environment always ends, as on a worker: a bad retry delay or an unreportable error fails it."""

from __future__ import annotations

import pydantic

import workpath
from workpath import errors, reporting, testing


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no words for it")


@workpath.routine("unit.negative_delay")
async def negative_delay(ctx: workpath.Context) -> None:
    raise workpath.TemporaryError("try later", delay=-1)


@workpath.routine("unit.delay_changed_after_raise")
async def delay_changed_after_raise(ctx: workpath.Context) -> None:
    error = workpath.TemporaryError("try later", delay=1)
    error.delay = -1  # nothing checks it here: the report cannot carry it
    raise error


@workpath.routine("unit.unprintable")
def unprintable(ctx: workpath.Context) -> None:
    raise Unprintable


async def test_a_negative_delay_fails_the_run_with_a_clear_value_error() -> None:
    outcome = await testing.RoutineEnvironment().start(negative_delay).wait()
    assert outcome.error is not None and isinstance(outcome.exception, ValueError)
    assert outcome.error.type == "ValueError" and not outcome.error.retryable
    assert outcome.error.message.startswith("TemporaryError delay must be a finite number of seconds >= 0 or None")
    assert outcome.error == reporting.error_info(outcome.exception)  # what a worker sends for it
    assert [line.message for line in outcome.logs] == [f"ValueError: {outcome.error.message}"]


async def test_a_delay_the_report_cannot_carry_fails_the_run_as_a_report_error() -> None:
    outcome = await testing.RoutineEnvironment().start(delay_changed_after_raise).wait()
    assert outcome.error is not None
    assert outcome.error.type == errors.ReportError.__name__ and not outcome.error.retryable
    assert outcome.error.message.startswith("the worker could not report how the run ended (ValidationError: ")
    assert isinstance(outcome.exception, pydantic.ValidationError)


async def test_an_error_without_words_fails_the_run_as_a_report_error() -> None:
    outcome = await testing.RoutineEnvironment().start(unprintable).wait()
    assert outcome.error is not None and outcome.error.type == "ReportError"
    assert outcome.error.message == "the worker could not report how the run ended (RuntimeError: no words for it)"
