"""All knobs of the directive service and the dispatcher, in one frozen object.

It uses the worker package's settings machinery (:class:`workpath.settings.Settings`):
each field has a docstring, which ``workpath dev --help`` and ``workpath operator
--help`` show; values come from defaults, then ``WORKPATH_*`` environment variables,
then command-line flags. The operator's and local mode's settings extend this class.
"""

from __future__ import annotations

from typing import Self

import pydantic

from workpath import settings


class ServiceSettings(settings.Settings):
    """Where the directive service listens, how it watches workers, and what it accepts from them."""

    host: str = pydantic.Field(default="127.0.0.1", min_length=1)
    """Address the directive service listens on."""

    port: int = pydantic.Field(default=7740, ge=0, le=65535)
    """Port of the directive service; 0 picks a free one."""

    token: str | None = pydantic.Field(default=None, repr=False)
    """Shared token workers (and, in local mode, runs API callers) present as 'Authorization: Bearer ...'. It
    proves only that the caller knows it, and all who know it are one identity: any of them may connect with
    the worker ID of another shared-token worker (taking over its runs) though not one a Kubernetes identity
    holds, receives the runs and params of the routines it announces, and in local mode may submit, read and
    cancel any run. It keeps out whoever lacks it: keep it as secret as the runs' params."""

    heartbeat_interval: float = pydantic.Field(default=5.0, gt=0)
    """Seconds between 'check_pulse' directives to each worker."""

    heartbeat_misses: int = pydantic.Field(default=3, ge=1)
    """Unanswered pulses after which a worker is unresponsive and its runs are re-queued."""

    reconnect_grace: float = pydantic.Field(default=30.0, ge=0)
    """Seconds a disconnected worker keeps its runs, waiting for it to reconnect."""

    max_frame_bytes: int = pydantic.Field(default=1 << 20, ge=1)
    """Largest directive accepted, alone in a frame or in a batch; larger ones are refused with 'v1.error'."""

    max_result_bytes: int = pydantic.Field(default=64 << 10, ge=1)
    """Largest routine result accepted; a larger one fails the run, not retryable."""

    max_frames_per_second: int = pydantic.Field(default=200_000, ge=1)
    """Per-connection input rate, in directives (those of a batch each count); above it the service stops
    reading for a while (backpressure: nothing is dropped)."""

    finished_runs_kept: int = pydantic.Field(default=10_000, ge=0)
    """Finished runs kept in memory, the oldest forgotten first: to answer late or repeated reports, clients
    awaiting a run by ID, and (local mode) ``workpath get``/``logs`` with the runs' log lines."""

    settle_seconds: float = pydantic.Field(default=10.0, ge=0)
    """After a restart with runs to recover, seconds to wait for their workers to reconnect before
    dispatching (so a run still alive on a worker is not started twice)."""

    cancel_grace: float = pydantic.Field(default=2.0, ge=0)
    """Seconds past an attempt's deadline before the service cancels it itself
    (the worker enforces the deadline first)."""

    # ------------------------------------------------------------ what one caller can cost

    max_params_bytes: int = pydantic.Field(default=256 << 10, ge=2)
    """Largest params of a run, as compact JSON: a Routine over it fails with InvalidSpec, a POST /v1/runs
    over it gets 413. Params travel in every dispatch and sit in etcd; pass references to large data."""

    max_log_line_bytes: int = pydantic.Field(default=16 << 10, ge=256)
    """Largest ctx.log line kept; a longer one is cut to fit, with a marker saying how long it was."""

    log_lines_per_second: float = pydantic.Field(default=100.0, gt=0)
    """ctx.log lines kept per run per second on average (a token bucket of --log-burst); the excess is dropped,
    counted, and said in one line once the run logs within its rate again. Worker pods print every line to
    their stdout regardless."""

    log_burst: int = pydantic.Field(default=1000, ge=1)
    """ctx.log lines a run may write at once before --log-lines-per-second applies."""

    max_open_subroutines: int = pydantic.Field(default=10_000, ge=1)
    """Sub-routines one run may have unfinished at once; a request past it fails in the routine at once
    (TooManySubroutinesError): wait for some (gather in batches) before asking for more."""

    max_client_runs_in_flight: int = pydantic.Field(default=10_000, ge=1)
    """Runs one client connection (/v1/clients, workpath.Client) may have submitted or awaited and not yet
    finished; over it the service stops reading that connection until some finish (backpressure: the client's
    sends wait, nothing is dropped)."""

    @pydantic.model_validator(mode="after")
    def _params_fit_in_a_frame(self) -> Self:
        if self.max_params_bytes >= self.max_frame_bytes:
            raise ValueError(
                f"--max-params-bytes ({self.max_params_bytes}) must be under --max-frame-bytes "
                f"({self.max_frame_bytes}): a run's params travel in one frame"
            )
        return self
