"""workpath: run Python routines on a fleet of workers.

Define routines in a module of yours and start a worker with it::

    import workpath

    @workpath.routine("reports.build")
    async def build(ctx: workpath.Context, month: str) -> dict:
        ctx.log.info("building", month=month)
        parts = await ctx.gather(*(ctx.call("reports.part", month=month, n=i) for i in range(4)))
        return {"rows": sum(p["rows"] for p in parts)}

    $ workpath worker my_package.routines
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workpath.clients.api import Client, RunHandle
    from workpath.clients.blocking import SyncClient, SyncRunHandle
    from workpath.clients.frames import RunSpec, RunStatus
    from workpath.contexts import Context, SubroutineCall, context
    from workpath.errors import (
        ClientAuthenticationError,
        ClientError,
        ContextError,
        InvalidParamsError,
        PermanentError,
        RoutineDefinitionError,
        RoutineFailedError,
        RunCancelledError,
        RunFailedError,
        RunNotFoundError,
        SubmissionError,
        TemporaryError,
        WorkpathError,
    )
    from workpath.routines import RoutineDefinition, routine
    from workpath.settings import WorkerSettings

    __version__: str

# Public names and the module each comes from. They are loaded on first use (PEP 562): `workpath probe`, which a
# worker pod runs every few seconds, imports this package but needs none of them (nor pydantic, which they load).
_LAZY = {
    "routine": "routines",
    "RoutineDefinition": "routines",
    "Context": "contexts",
    "context": "contexts",
    "SubroutineCall": "contexts",
    "WorkerSettings": "settings",
    "WorkpathError": "errors",
    "TemporaryError": "errors",
    "PermanentError": "errors",
    "RoutineFailedError": "errors",
    "RoutineDefinitionError": "errors",
    "InvalidParamsError": "errors",
    "ContextError": "errors",
    "Client": "clients.api",
    "RunHandle": "clients.api",
    "SyncClient": "clients.blocking",
    "SyncRunHandle": "clients.blocking",
    "RunSpec": "clients.frames",
    "RunStatus": "clients.frames",
    "ClientError": "errors",
    "ClientAuthenticationError": "errors",
    "SubmissionError": "errors",
    "RunFailedError": "errors",
    "RunCancelledError": "errors",
    "RunNotFoundError": "errors",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("workpath")
        except metadata.PackageNotFoundError:  # a source tree that is not installed
            version = "0.0.0+unknown"
        globals()["__version__"] = version
        return version
    module = _LAZY.get(name)
    if module is None:
        # A submodule used as an attribute (``workpath.contexts``) without its own import, as before.
        try:
            return importlib.import_module(f"workpath.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"workpath.{name}":
                raise
            raise AttributeError(f"module 'workpath' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"workpath.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "__version__"])


__all__ = [
    "Client",
    "ClientAuthenticationError",
    "ClientError",
    "Context",
    "ContextError",
    "InvalidParamsError",
    "PermanentError",
    "RoutineDefinition",
    "RoutineDefinitionError",
    "RoutineFailedError",
    "RunCancelledError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunSpec",
    "RunStatus",
    "SubmissionError",
    "SubroutineCall",
    "SyncClient",
    "SyncRunHandle",
    "TemporaryError",
    "WorkerSettings",
    "WorkpathError",
    "__version__",
    "context",
    "routine",
]
