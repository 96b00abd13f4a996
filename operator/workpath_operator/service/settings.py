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


class _FromEnv:
    """``from_env`` for a frozen settings dataclass whose fields are read from ``WORKPATH_<FIELD>``."""

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] | None = None, **overrides: Any) -> Self:
        """Defaults, then ``WORKPATH_<FIELD>`` variables, then ``overrides`` that are not None."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            raw = source.get(f"WORKPATH_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = _convert(field.type, raw, field.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceSettings(_FromEnv):
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class OperatorSettings(_FromEnv):
    """The Kubernetes side of ``workpath operator``: what it watches, how it authenticates workers, how it writes."""

    namespaces: tuple[str, ...] = ()
    """Namespaces whose Routines the operator serves; repeat the flag for several
    (env WORKPATH_NAMESPACES, comma-separated)."""

    all_namespaces: bool = False
    """Serve the Routines of every namespace (env WORKPATH_ALL_NAMESPACES)."""

    token_review: bool = True
    """Accept workers' projected ServiceAccount tokens, checked with the TokenReview API
    (env WORKPATH_TOKEN_REVIEW). The shared token (--token) is accepted too when set."""

    token_audience: str = "workpath"
    """Audience a worker's ServiceAccount token must be issued for (env WORKPATH_TOKEN_AUDIENCE)."""

    allowed_service_accounts: tuple[str, ...] = ()
    """Only these ServiceAccounts (NAMESPACE:NAME) may connect as workers; any if empty; repeat the flag
    for several (env WORKPATH_ALLOWED_SERVICE_ACCOUNTS, comma-separated)."""

    token_cache_seconds: float = 30.0
    """Seconds a token that passed TokenReview is trusted without asking again (env WORKPATH_TOKEN_CACHE_SECONDS)."""

    token_cache_size: int = 1024
    """Most tokens remembered as reviewed (env WORKPATH_TOKEN_CACHE_SIZE)."""

    status_writers: int = 16
    """Concurrent writes to the API server (status patches, child Routines, deletions); a Routine has at most
    one in flight, and the changes that pile up meanwhile become one patch (env WORKPATH_STATUS_WRITERS)."""

    status_linger: float = 0.005
    """Seconds a Routine's first change waits before it is written, so that the changes right after it are
    written with it (env WORKPATH_STATUS_LINGER)."""

    events_per_second: float = 20.0
    """Kubernetes Events posted per second at most, in bursts of up to --event-burst; the ones over the
    budget are dropped and counted, never queued without bound; 0 posts none (env WORKPATH_EVENTS_PER_SECOND)."""

    event_burst: int = 100
    """Events that may be posted at once after a quiet time (env WORKPATH_EVENT_BURST)."""

    liveness_endpoint: str | None = None
    """kopf's own liveness endpoint, e.g. http://0.0.0.0:8080/healthz; the directive service serves /healthz
    and /readyz in any case (env WORKPATH_LIVENESS_ENDPOINT)."""

    def __post_init__(self) -> None:
        if self.all_namespaces and self.namespaces:
            raise ValueError("give --all-namespaces or --namespace, not both")
        if not self.all_namespaces and not self.namespaces:
            raise ValueError("say which Routines to serve: --namespace NS (repeatable) or --all-namespaces")
        for account in self.allowed_service_accounts:
            namespace, sep, name = account.partition(":")
            if not sep or not namespace or not name or ":" in name:
                raise ValueError(f"allowed ServiceAccount {account!r} is not NAMESPACE:NAME")
        if self.status_writers < 1:
            raise ValueError(f"status_writers must be at least 1, not {self.status_writers}")


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _convert(kind: Any, raw: str, name: str) -> Any:
    text = str(kind)
    if text.startswith("bool"):
        if raw.lower() not in _BOOLEANS:
            raise ValueError(f"WORKPATH_{name.upper()}={raw!r} is not one of {', '.join(sorted(_BOOLEANS))}")
        return _BOOLEANS[raw.lower()]
    if text.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
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
