"""The retry and timeout policy, without timers: the delay doubles per failure unless the error names its own,
retries stop at the limit or at a permanent error, and a run's timeout bounds both its wait and its attempts."""

from __future__ import annotations

import datetime

from workpath import directives
from workpath_operator.service import retrying, runs

POLICY = retrying.RetryPolicy(cancel_grace=2.0)


def error(*, retryable: bool = True, delay: float | None = None) -> directives.ErrorInfo:
    return directives.ErrorInfo(type="TimeoutError", message="slow", retryable=retryable, delay=delay)


def test_the_backoff_doubles_with_each_failure_up_to_the_limit() -> None:
    retries = runs.Retries(limit=3, backoff_seconds=5.0)
    delays = [POLICY.retry_delay(retries, error(), failures=n) for n in (1, 2, 3, 4)]
    assert delays == [5.0, 10.0, 20.0, None]


def test_a_delay_the_error_asks_for_replaces_the_backoff() -> None:
    retries = runs.Retries(limit=1, backoff_seconds=5.0)
    assert POLICY.retry_delay(retries, error(delay=0.5), failures=1) == 0.5


def test_a_permanent_error_is_not_retried() -> None:
    assert POLICY.retry_delay(runs.Retries(limit=5), error(retryable=False), failures=1) is None


def test_a_run_without_retries_fails_at_its_first_failure() -> None:
    assert POLICY.retry_delay(runs.Retries(), error(), failures=1) is None


def test_a_timeout_gives_a_deadline_and_the_service_cancels_after_a_grace() -> None:
    spec = runs.RunSpec.model_validate({"routineID": "a.b", "timeoutSeconds": 30})
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert POLICY.deadline(spec, now=now) == now + datetime.timedelta(seconds=30)
    assert POLICY.attempt_timeout(spec) == 32.0
    assert POLICY.queue_timeout(spec) == 30


def test_a_run_without_a_timeout_waits_and_runs_without_limit() -> None:
    spec = runs.RunSpec.model_validate({"routineID": "a.b"})
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert POLICY.deadline(spec, now=now) is None
    assert POLICY.queue_timeout(spec) is None
