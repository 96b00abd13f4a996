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

import importlib.metadata

from workpath import contexts, errors, routines, settings

try:
    __version__ = importlib.metadata.version("workpath")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

routine = routines.routine
RoutineDefinition = routines.RoutineDefinition
Context = contexts.Context
context = contexts.context
SubroutineCall = contexts.SubroutineCall
WorkerSettings = settings.WorkerSettings

WorkpathError = errors.WorkpathError
TemporaryError = errors.TemporaryError
PermanentError = errors.PermanentError
RoutineFailedError = errors.RoutineFailedError
RoutineDefinitionError = errors.RoutineDefinitionError
InvalidParamsError = errors.InvalidParamsError
ContextError = errors.ContextError

__all__ = [
    "Context",
    "ContextError",
    "InvalidParamsError",
    "PermanentError",
    "RoutineDefinition",
    "RoutineDefinitionError",
    "RoutineFailedError",
    "SubroutineCall",
    "TemporaryError",
    "WorkerSettings",
    "WorkpathError",
    "__version__",
    "context",
    "routine",
]
