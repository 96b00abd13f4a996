"""A failed run carries the error type, message and retry intent a worker would report."""

from __future__ import annotations

import pytest

import workpath
from workpath import testing


@workpath.routine("unit.fails")
async def fails(ctx: workpath.Context, how: str) -> None:
    if how == "temporary":
        raise workpath.TemporaryError("the database is busy", delay=5)
    if how == "permanent":
        raise workpath.PermanentError("month 2026-13 does not exist")
    if how == "connection":
        raise ConnectionResetError("peer went away")
    raise ValueError("bad value")


@pytest.mark.parametrize(
    ("how", "kind", "message", "retryable", "delay"),
    [
        ("temporary", "TemporaryError", "the database is busy", True, 5.0),
        ("permanent", "PermanentError", "month 2026-13 does not exist", False, None),
        ("connection", "ConnectionResetError", "peer went away", True, None),
        ("value", "ValueError", "bad value", False, None),
    ],
)
async def test_the_error_says_type_message_and_retry_intent(
    how: str, kind: str, message: str, retryable: bool, delay: float | None
) -> None:
    with pytest.raises(testing.RunFailedError) as caught:
        await testing.RoutineEnvironment().run(fails, how=how)
    failure = caught.value
    assert (failure.type, failure.message, failure.retryable, failure.delay) == (kind, message, retryable, delay)
    assert type(failure.__cause__).__name__ == kind  # the exception the routine raised
    assert failure.outcome.exception is failure.__cause__


async def test_the_message_names_run_routine_and_retry() -> None:
    with pytest.raises(
        testing.RunFailedError, match=r"of 'unit.fails' failed: TemporaryError: .* \(retryable after 5s\)"
    ):
        await testing.RoutineEnvironment().run(fails, how="temporary")


async def test_an_unexpected_exception_leaves_its_traceback_in_the_log() -> None:
    outcome = await testing.RoutineEnvironment().start(fails, how="value").wait()
    (line,) = outcome.logs
    assert (line.level, line.message) == ("error", "ValueError: bad value")
    assert 'raise ValueError("bad value")' in line.fields["traceback"]


async def test_an_error_raised_on_purpose_leaves_no_traceback() -> None:
    outcome = await testing.RoutineEnvironment().start(fails, how="permanent").wait()
    assert outcome.logs == ()
    assert not outcome.succeeded and not outcome.cancelled
