"""All knobs of the directive service and the dispatcher, in one frozen tree.

Each field has a docstring; ``workpath dev --help`` and ``workpath operator --help``
show them. Values come from defaults, then ``WORKPATH_*`` environment variables,
then command-line flags.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Self


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    host: str = "127.0.0.1"
    """Address the directive service listens on (env WORKPATH_HOST)."""

    port: int = 7740
    """Port of the directive service; 0 picks a free one (env WORKPATH_PORT)."""

    token: str | None = None
    """Shared token workers must present as ``Authorization: Bearer ...`` (env WORKPATH_TOKEN)."""

    heartbeat_interval: float = 5.0
    """Seconds between ``check_pulse`` directives to each worker (env WORKPATH_HEARTBEAT_INTERVAL)."""

    heartbeat_misses: int = 3
    """Unanswered pulses after which a worker is unresponsive and its runs are re-queued
    (env WORKPATH_HEARTBEAT_MISSES)."""

    reconnect_grace: float = 30.0
    """Seconds a disconnected worker keeps its runs, waiting for it to reconnect
    (env WORKPATH_RECONNECT_GRACE)."""

    max_frame_bytes: int = 1 << 20
    """Largest directive frame accepted; larger ones are refused with ``v1.error``
    (env WORKPATH_MAX_FRAME_BYTES)."""

    max_result_bytes: int = 64 << 10
    """Largest routine result accepted; a larger one fails the run, not retryable
    (env WORKPATH_MAX_RESULT_BYTES)."""

    max_frames_per_second: int = 200_000
    """Per-connection input rate; above it the service stops reading for a while
    (backpressure: nothing is dropped) (env WORKPATH_MAX_FRAMES_PER_SECOND)."""

    finished_runs_kept: int = 10_000
    """Finished runs kept in memory to answer late or repeated reports
    (env WORKPATH_FINISHED_RUNS_KEPT)."""

    settle_seconds: float = 10.0
    """After a restart with runs to recover, seconds to wait for their workers to reconnect before
    dispatching (so a run still alive on a worker is not started twice) (env WORKPATH_SETTLE_SECONDS)."""

    cancel_grace: float = 2.0
    """Seconds past an attempt's deadline before the service cancels it itself
    (the worker enforces the deadline first) (env WORKPATH_CANCEL_GRACE)."""

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None, **overrides: Any) -> Self:
        """Defaults, then ``WORKPATH_<FIELD>`` variables, then ``overrides`` that are not None."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = source.get(f"WORKPATH_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = _convert(field.type, raw, field.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _convert(kind: Any, raw: str, name: str) -> Any:
    text = str(kind)
    try:
        if text.startswith("int"):
            return int(raw)
        if text.startswith("float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"WORKPATH_{name.upper()}={raw!r} is not a number") from None
    return raw


def field_help(cls: type[Any]) -> dict[str, str]:
    """The docstring of each settings field, read from the source (for ``--help``)."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    helps: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            helps[node.target.id] = " ".join(str(following.value.value).split())
    return helps
