"""Routine definitions: the ``@workpath.routine`` decorator and how a worker finds them.

A routine is a function whose first parameter is the :class:`~workpath.contexts.Context`
and whose other parameters are the run's params, passed by name::

    @workpath.routine("reports.build")
    async def build(ctx: workpath.Context, month: str) -> dict: ...

The decorator checks the ID and the signature at import time, so that a mistake
fails the worker when it starts, not the first run. It returns a
:class:`RoutineDefinition`, which is still callable like the function.

There is no global registry: a worker is given modules, and it collects the
definitions it finds as their attributes (:func:`collect`, :func:`load`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from workpath import directives, errors

P = ParamSpec("P")
R = TypeVar("R")

MAX_ROUTINE_ID_LENGTH = 253
_ROUTINE_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def check_routine_id(routine_id: object) -> directives.RoutineID:
    """Return ``routine_id`` if it is a valid routine ID (dotted identifiers), else raise.

    Raises :class:`~workpath.errors.RoutineDefinitionError` (a ``TypeError``) saying what is wrong.
    """
    if not isinstance(routine_id, str):
        raise errors.RoutineDefinitionError(
            f"a routine ID must be a string such as 'reports.build', not {type(routine_id).__name__} {routine_id!r}"
        )
    if len(routine_id) > MAX_ROUTINE_ID_LENGTH or not _ROUTINE_ID.fullmatch(routine_id):
        raise errors.RoutineDefinitionError(
            f"invalid routine ID {routine_id!r}: use dotted identifiers such as 'reports.build' "
            f"(letters, digits and underscores, not starting with a digit, separated by dots, "
            f"at most {MAX_ROUTINE_ID_LENGTH} characters)"
        )
    return directives.RoutineID(routine_id)


class RoutineDefinition[**P, R]:
    """A function registered as a routine, checked and ready to run.

    Calling the definition calls the function, so decorated functions can still be
    tested directly with a context of your own.
    """

    id: directives.RoutineID
    """The routine ID the worker advertises and the service routes by."""

    fn: Callable[P, R]
    """The decorated function."""

    is_async: bool
    """Whether the function is a coroutine function (it runs on the event loop; otherwise in a thread)."""

    def __init__(self, routine_id: str, fn: Callable[P, R]) -> None:
        self.id = check_routine_id(routine_id)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - an object with an 'async def __call__'
        )
        (
            self._context_name,
            self._accepted,
            self._required,
            self._any_params,
        ) = _check_signature(self.id, fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<RoutineDefinition {self.id!r} {_where(self.fn)}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise :class:`~workpath.errors.InvalidParamsError` if ``params`` cannot be passed to the routine.

        It checks names only (missing required params, unexpected ones); values are
        the routine's to check.
        """
        keys = params.keys()
        if self._required <= keys and (self._any_params or keys <= self._accepted) and self._context_name not in keys:
            return
        raise errors.InvalidParamsError(self._explain(keys))

    def _explain(self, keys: Iterable[str]) -> str:
        given = set(keys)
        problems = []
        missing = sorted(self._required - given)
        if missing:
            problems.append(f"missing required params: {', '.join(missing)}")
        unexpected = sorted(given - self._accepted) if not self._any_params else []
        if self._context_name in given:
            unexpected = sorted({*unexpected, self._context_name})
        if unexpected:
            problems.append(f"unexpected params: {', '.join(unexpected)}")
        accepted = ", ".join(sorted(self._accepted)) or "none"
        if self._any_params:
            accepted += " and any other name"
        return f"routine {self.id!r} cannot take these params: {'; '.join(problems)} (it accepts: {accepted})"


def routine(routine_id: str, /) -> Callable[[Callable[P, R]], RoutineDefinition[P, R]]:
    """Define a routine with the ID ``routine_id`` (dotted, such as ``"reports.build"``).

    The function's first parameter receives the :class:`~workpath.contexts.Context`;
    the others receive the run's params by name. ``async def`` routines run on the
    worker's event loop, plain ``def`` routines in its thread pool.

    Raises :class:`~workpath.errors.RoutineDefinitionError` at once if the ID or the
    signature cannot work.
    """
    if callable(routine_id) and not isinstance(routine_id, str):
        raise errors.RoutineDefinitionError(
            f"@workpath.routine needs a routine ID: write @workpath.routine('some.id') above "
            f"{getattr(routine_id, '__qualname__', routine_id)!s}, not a bare @workpath.routine"
        )
    checked = check_routine_id(routine_id)

    def decorate(fn: Callable[P, R]) -> RoutineDefinition[P, R]:
        return RoutineDefinition(checked, fn)

    return decorate


def _check_signature(routine_id: str, fn: object) -> tuple[str, frozenset[str], frozenset[str], bool]:
    """Check that ``fn`` can be a routine; return (context name, accepted, required, takes **kwargs)."""
    if isinstance(fn, RoutineDefinition):
        raise errors.RoutineDefinitionError(
            f"{fn.fn.__qualname__} is already routine {fn.id!r}; it cannot also be {routine_id!r}: "
            f"decorate it once (write a second function to have a second ID)"
        )
    if not callable(fn):
        raise errors.RoutineDefinitionError(
            f"@workpath.routine({routine_id!r}) must decorate a function, not {type(fn).__name__} {fn!r}"
        )
    name = getattr(fn, "__qualname__", repr(fn))
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise errors.RoutineDefinitionError(
            f"routine {routine_id!r} ({name}) is a generator function; a routine returns one result: "
            f"use 'return', not 'yield'"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise errors.RoutineDefinitionError(
            f"routine {routine_id!r}: cannot read the signature of {name}: {exc}"
        ) from None

    parameters = list(signature.parameters.values())
    usage = f"write it as 'def {getattr(fn, '__name__', 'fn')}(ctx, /, **params)' or with named params"
    if not parameters:
        raise errors.RoutineDefinitionError(
            f"routine {routine_id!r} ({name}) takes no parameters; its first parameter receives "
            f"the workpath.Context: {usage}"
        )
    first, rest = parameters[0], parameters[1:]
    if first.kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise errors.RoutineDefinitionError(
            f"routine {routine_id!r} ({name}): the first parameter receives the workpath.Context "
            f"and must be positional, but {first.name!r} is {_kind(first)}: {usage}"
        )
    accepted: set[str] = set()
    required: set[str] = set()
    any_params = False
    for param in rest:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise errors.RoutineDefinitionError(
                f"routine {routine_id!r} ({name}): params are passed by name, so *{param.name} "
                f"would never receive anything; use named parameters or **{param.name}"
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise errors.RoutineDefinitionError(
                f"routine {routine_id!r} ({name}): params are passed by name, but {param.name!r} is "
                f"positional-only; move the '/' right after the context parameter"
            )
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            any_params = True
            continue
        accepted.add(param.name)
        if param.default is inspect.Parameter.empty:
            required.add(param.name)
    return first.name, frozenset(accepted), frozenset(required), any_params


def _kind(param: inspect.Parameter) -> str:
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return f"*{param.name}"
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{param.name}"
    return param.kind.description


def _where(fn: object) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', fn)}"


def index(
    definitions: Iterable[RoutineDefinition[..., Any]],
) -> dict[directives.RoutineID, RoutineDefinition[..., Any]]:
    """The definitions by routine ID; the same one twice counts once.

    Raises :class:`~workpath.errors.RoutineDefinitionError` if two different
    definitions share an ID.
    """
    found: dict[directives.RoutineID, RoutineDefinition[..., Any]] = {}
    for definition in definitions:
        known = found.setdefault(definition.id, definition)
        if known is not definition:
            raise errors.RoutineDefinitionError(
                f"two routines have the ID {definition.id!r}: {_where(known.fn)} and "
                f"{_where(definition.fn)}; give each its own ID"
            )
    return found


def collect(modules: Iterable[types.ModuleType]) -> dict[directives.RoutineID, RoutineDefinition[..., Any]]:
    """The routine definitions found as attributes of ``modules``, by routine ID.

    The same definition seen twice (re-exported by another module) counts once.
    Raises :class:`~workpath.errors.RoutineDefinitionError` if two different
    definitions share an ID, or if a module defines no routine at all.
    """
    found: list[RoutineDefinition[..., Any]] = []
    for module in modules:
        definitions = [value for value in vars(module).values() if isinstance(value, RoutineDefinition)]
        if not definitions:
            raise errors.RoutineDefinitionError(
                f"module {module.__name__!r} defines no routines: decorate functions in it with "
                f"@workpath.routine('some.id'), or do not pass it to the worker"
            )
        found.extend(definitions)
    return index(found)


def load(module_names: Sequence[str]) -> dict[directives.RoutineID, RoutineDefinition[..., Any]]:
    """Import the modules named (``"my_package.routines"``) and :func:`collect` their routines."""
    if not module_names:
        raise errors.RoutineDefinitionError("no routine modules given: name at least one module to import")
    modules = []
    for name in module_names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise errors.RoutineDefinitionError(
                f"cannot import routine module {name!r}: {exc}; check the module name and that its "
                f"package is importable from here (sys.path)"
            ) from exc
    return collect(modules)
