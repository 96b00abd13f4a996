"""Settings: every knob of a process in one frozen, typed object, and the worker's own.

A settings class derives from :class:`Settings` and gives each field a docstring. A
value comes from the field's default, then the environment variable
``WORKPATH_<FIELD>`` (``WORKPATH_SLOTS`` for ``slots``), then the command line
(``--slots``). Pydantic checks and converts every value, whatever its source: numbers,
booleans (true/false, 1/0, yes/no, on/off) and, for tuple fields, comma-separated
lists. :meth:`Settings.explain` words a refusal with the flag, the variable and the
value; :meth:`Settings.add_flags` and :meth:`Settings.flag_values` give a class its
command-line flags, whose ``--help`` is the field's docstring.

The operator's settings (the directive service, Kubernetes, local mode) use this same
machinery: it lives here because the operator package depends on this one, never the
other way round.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import pydantic
import pydantic.fields

ENV_PREFIX = "WORKPATH_"

LogLevelName = Literal["debug", "info", "warning", "error"]


class Settings(pydantic.BaseModel):
    """The base of every settings class: frozen, no unknown fields, one docstring per field."""

    model_config = pydantic.ConfigDict(
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    #: What ``--help`` shows as the default of a field whose default is computed.
    shown_defaults: ClassVar[Mapping[str, str]] = {}

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _split_commas(cls, value: object, info: pydantic.ValidationInfo) -> object:
        """A tuple field given as one string (an environment variable) is a comma-separated list."""
        field = cls.model_fields[str(info.field_name)]
        if isinstance(value, str) and typing.get_origin(field.annotation) is tuple:
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of a field: ``slots`` -> ``WORKPATH_SLOTS``."""
        return ENV_PREFIX + field.upper()

    @classmethod
    def flag_name(cls, field: str) -> str:
        """The flag of a field: ``drain_timeout`` -> ``--drain-timeout``; a tuple field's is singular."""
        name = field.removesuffix("s") if _is_tuple(cls.model_fields[field]) else field
        return "--" + name.replace("_", "-")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Self:
        """Defaults, then ``WORKPATH_*`` variables from ``environ`` (``os.environ``), then ``overrides``.

        Empty variables and overrides that are None are ignored. Raises
        ``pydantic.ValidationError`` for a bad value; :meth:`explain` words it.
        """
        environ = os.environ if environ is None else environ
        from_env = {name: environ[cls.env_name(name)] for name in cls.model_fields if environ.get(cls.env_name(name))}
        given = {name: value for name, value in overrides.items() if value is not None}
        return cls.model_validate(cls._merge(from_env, given))

    @classmethod
    def _merge(cls, from_env: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """How values from the environment and given ones combine: given ones win (a subclass may refine it)."""
        return from_env | given

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed, checked as any other value."""
        return self.model_validate(dict(self) | changes)

    @classmethod
    def explain(cls, exc: pydantic.ValidationError) -> str:
        """One clause per bad value, naming the flag and the variable to fix, and the value (secrets masked)."""
        clauses = []
        for problem in exc.errors(include_url=False):
            message = problem["msg"].removeprefix("Value error, ")
            name = str(problem["loc"][0]) if problem["loc"] else ""
            field = cls.model_fields.get(name)
            if field is None:
                clauses.append(message)
                continue
            shown = "***" if _is_secret(field) else repr(problem.get("input"))
            clauses.append(f"{cls.flag_name(name)} / {cls.env_name(name)}: {message} (got {shown})")
        return "; ".join(clauses)

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, *, title: str = "settings") -> None:
        """One flag per field, in an argument group; :meth:`flag_values` collects what was given.

        A boolean field is a ``--x/--no-x`` pair; a tuple field is a repeatable flag named
        in the singular (``--namespace`` for ``namespaces``). Values are left as strings:
        the class converts and checks them as it does environment variables, so that a bad
        value is worded the same way from either source.
        """
        group = parser.add_argument_group(title)
        for name in cls._fields_most_derived_first():
            field = cls.model_fields[name]
            flag = cls.flag_name(name)
            options: dict[str, Any] = {
                "dest": name,
                "default": argparse.SUPPRESS,
                "help": cls.help_of(name).replace("%", "%%"),
            }
            if field.annotation is bool:
                options["action"] = argparse.BooleanOptionalAction
            elif _is_tuple(field):
                options.update(action="append", metavar=flag.removeprefix("--").replace("-", "_").upper())
            else:
                options["metavar"] = name.upper()
            group.add_argument(flag, **options)

    @classmethod
    def _fields_most_derived_first(cls) -> list[str]:
        """A subclass's own fields (``--workers`` of local mode) first, then those of the classes it extends."""
        ordered: list[str] = []
        for klass in cls.__mro__:
            if issubclass(klass, Settings):
                ordered += [name for name in klass.__annotations__ if name in cls.model_fields and name not in ordered]
        return ordered

    @classmethod
    def flag_values(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The fields given on the command line that :meth:`add_flags` made, as overrides for :meth:`load`."""
        return {name: getattr(args, name) for name in cls.model_fields if hasattr(args, name)}

    @classmethod
    def help_of(cls, field: str) -> str:
        """A field's ``--help``: its docstring, its variable, its default."""
        text = " ".join((cls.model_fields[field].description or "").split())
        return f"{text} [env {cls.env_name(field)}; default: {cls._shown_default(field)}]"

    @classmethod
    def _shown_default(cls, field: str) -> str:
        info = cls.model_fields[field]
        if field in cls.shown_defaults:
            return cls.shown_defaults[field]
        if info.default is None or info.default == ():
            return "none"
        if isinstance(info.default, bool):
            return str(info.default).lower()
        return str(info.default)


def _is_tuple(field: pydantic.fields.FieldInfo) -> bool:
    return typing.get_origin(field.annotation) is tuple


def _is_secret(field: pydantic.fields.FieldInfo) -> bool:
    """A secret is a ``SecretStr`` or a field kept out of ``repr``: its value is never shown."""
    return not field.repr or pydantic.SecretStr in (field.annotation, *typing.get_args(field.annotation))


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(Settings):
    """How a worker connects, what it advertises, and how it behaves."""

    shown_defaults: ClassVar[Mapping[str, str]] = {"worker_id": "<hostname>-<pid>"}

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
    """Level of local logs (debug, info, warning or error); routine logs at or above it are also sent to
    the service."""

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

    status_file: pathlib.Path | None = None
    """File where the worker keeps its state (connecting, connected, reconnecting, draining) for 'workpath probe
    ready|live', the exec probes of its pod: rewritten on every change and every status interval, never per
    directive. Off when not set; pods use /tmp/workpath/status."""

    status_interval: float = pydantic.Field(default=5.0, gt=0, le=3600)
    """Seconds between refreshes of the status file while the worker's event loop runs; 'workpath probe live'
    fails once the file is three intervals old."""

    @pydantic.field_validator("token", mode="after")
    @classmethod
    def _token_not_blank(cls, token: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("the token is empty; give a token, or none at all")
        return token

    @pydantic.field_validator("log_level", mode="before")
    @classmethod
    def _log_level_in_any_case(cls, level: object) -> object:
        if isinstance(level, str) and level.lower() in typing.get_args(LogLevelName):
            return level.lower()
        return level  # as given, to be refused as given

    @pydantic.model_validator(mode="after")
    def _backoff_in_order(self) -> Self:
        if self.backoff_cap < self.backoff_base:
            raise ValueError(f"backoff_cap ({self.backoff_cap}) must not be below backoff_base ({self.backoff_base})")
        return self

    @classmethod
    def _merge(cls, from_env: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """A token given one way replaces a token file given a lower way, and the other way round."""
        values = dict(from_env)
        if "token" in given:
            values.pop("token_file", None)
        if "token_file" in given:
            values.pop("token", None)
        values |= given
        if values.get("token") and values.get("token_file"):
            del values["token_file"]  # both the same way: the token itself wins
        return values

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
