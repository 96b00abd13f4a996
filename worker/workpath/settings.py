"""All knobs of a worker, in one frozen, typed object.

Each field has a docstring, which ``workpath worker --help`` shows. A value comes
from the field's default, then the environment variable ``WORKPATH_<FIELD>``
(``WORKPATH_SLOTS`` for ``slots``), then the command line (``--slots``).
Values are validated: a bad one is refused with the variable's name.
"""

from __future__ import annotations

import os
import pathlib
import socket
from collections.abc import Mapping
from typing import Any, Literal, Self

import pydantic

ENV_PREFIX = "WORKPATH_"

LogLevelName = Literal["debug", "info", "warning", "error"]


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(pydantic.BaseModel):
    """How a worker connects, what it advertises, and how it behaves."""

    model_config = pydantic.ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    url: str = pydantic.Field(default="ws://127.0.0.1:7740/v1/workers", pattern=r"^wss?://\S+$")
    """WebSocket URL of the directive service (ws:// or wss://)."""

    token: pydantic.SecretStr | None = None
    """Token sent as 'Authorization: Bearer <token>' when connecting."""

    token_file: pathlib.Path | None = None
    """File holding the token, read again on every connect (projected tokens rotate); used when no token
    is given."""

    slots: int = pydantic.Field(default=10, ge=1, le=10_000)
    """How many runs this worker takes at once (plain 'def' routines get as many threads)."""

    pool: str = pydantic.Field(default="default", min_length=1)
    """The worker pool this worker belongs to; runs can ask for a pool."""

    worker_id: str = pydantic.Field(default_factory=_default_worker_id, min_length=1, max_length=253)
    """Unique name of this worker; a reconnecting worker keeps its runs by it."""

    drain_timeout: float = pydantic.Field(default=30.0, ge=0)
    """Seconds a draining worker (SIGTERM/SIGINT) waits for running jobs before handing them back."""

    confirm_timeout: float = pydantic.Field(default=5.0, ge=0)
    """Seconds a draining worker waits for the service to confirm its last reports before it exits."""

    log_level: LogLevelName = "info"
    """Level of local logs; routine logs at or above it are also sent to the service."""

    max_message_size: int = pydantic.Field(default=1 << 20, ge=1024)
    """Largest directive frame, in bytes, received or sent; a larger result fails its run."""

    connect_timeout: float = pydantic.Field(default=10.0, gt=0)
    """Seconds to wait for the WebSocket handshake."""

    backoff_base: float = pydantic.Field(default=0.1, gt=0)
    """First reconnect delay in seconds; it doubles per failed attempt, with full jitter."""

    backoff_cap: float = pydantic.Field(default=5.0, gt=0)
    """Longest reconnect delay in seconds."""

    silence_timeout: float = pydantic.Field(default=60.0, gt=0)
    """Seconds without any directive from the service (it sends pulse checks) after which the worker
    drops the connection and reconnects."""

    @pydantic.field_validator("token", mode="after")
    @classmethod
    def _token_not_blank(cls, token: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("the token is empty; give a token, or none at all")
        return token

    @pydantic.model_validator(mode="after")
    def _backoff_in_order(self) -> Self:
        if self.backoff_cap < self.backoff_base:
            raise ValueError(f"backoff_cap ({self.backoff_cap}) must not be below backoff_base ({self.backoff_base})")
        return self

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of a field: ``slots`` -> ``WORKPATH_SLOTS``."""
        return ENV_PREFIX + field.upper()

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Self:
        """Defaults, then ``WORKPATH_*`` variables from ``environ`` (``os.environ``), then ``overrides``.

        Overrides that are None are ignored. A token given one way replaces a token
        file given a lower way, and the other way round. Raises
        ``pydantic.ValidationError`` for a bad value; :func:`explain` words it.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(cls.env_name(name))
            if raw:
                values[name] = raw
        given = {name: value for name, value in overrides.items() if value is not None}
        if "token" in given:
            values.pop("token_file", None)
        if "token_file" in given:
            values.pop("token", None)
        values.update(given)
        if values.get("token") and values.get("token_file"):
            values.pop("token_file")  # both in the environment: the token itself wins
        return cls.model_validate(values)

    def read_token(self) -> str | None:
        """The token to present now: the token, or the token file's content (read each time)."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            token = self.token_file.read_text(encoding="utf-8").strip()
            if not token:
                raise OSError(f"the token file {self.token_file} is empty")
            return token
        return None


def explain(exc: pydantic.ValidationError, *, flags: bool = True) -> str:
    """One line per bad value, naming the variable (and flag) to fix."""
    lines = []
    for problem in exc.errors(include_url=False):
        where = str(problem["loc"][0]) if problem["loc"] else ""
        if where in WorkerSettings.model_fields:
            names = WorkerSettings.env_name(where)
            if flags:
                names = f"--{where.replace('_', '-')} / {names}"
            value = problem.get("input")
            shown = "***" if where == "token" else repr(value)
            lines.append(f"{names}: {problem['msg']} (got {shown})")
        else:
            lines.append(str(problem["msg"]))
    return "; ".join(lines)
