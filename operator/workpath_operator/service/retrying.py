"""When a run is tried again, and how long the service waits: the retry and timeout policy, without timers.

Kept apart from the dispatcher's state machine so that the arithmetic is read (and tested) in one place:

- a failed attempt is retried while the error is retryable and the run has failures left
  (``spec.retries.limit``); the delay is the error's own (``TemporaryError(delay=...)``), else
  ``backoffSeconds * 2^(failures - 1)``;
- an attempt of a run with ``timeoutSeconds`` carries a deadline the worker enforces; the service cancels
  it itself ``cancel_grace`` seconds later, in case the worker does not;
- a run with ``timeoutSeconds`` that no worker takes within that time fails.
"""

from __future__ import annotations

import dataclasses
import datetime

from workpath import directives
from workpath_operator.service import runs


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """The policy of one service; ``cancel_grace`` comes from its settings."""

    cancel_grace: float

    def retry_delay(self, retries: runs.Retries, error: directives.ErrorInfo, *, failures: int) -> float | None:
        """Seconds before the next attempt after the ``failures``-th failure, or None when the run has failed."""
        if not error.retryable or failures > retries.limit:
            return None
        if error.delay is not None:
            return error.delay
        backoff: float = retries.backoff_seconds * 2 ** (failures - 1)
        return backoff

    def deadline(self, spec: runs.RunSpec, *, now: datetime.datetime) -> datetime.datetime | None:
        """The deadline an attempt started ``now`` is given, if the run has a timeout."""
        if spec.timeout_seconds is None:
            return None
        return now + datetime.timedelta(seconds=spec.timeout_seconds)

    def attempt_timeout(self, spec: runs.RunSpec) -> float:
        """Seconds after dispatch at which the service cancels an attempt still running (for a run with a timeout)."""
        if spec.timeout_seconds is None:
            raise ValueError(f"a run of {spec.routine_id} without timeoutSeconds has no attempt timeout")
        return spec.timeout_seconds + self.cancel_grace

    def queue_timeout(self, spec: runs.RunSpec) -> float | None:
        """Seconds a queued run waits for a worker before it fails, if it has a limit."""
        return spec.timeout_seconds
