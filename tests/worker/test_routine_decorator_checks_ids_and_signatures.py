"""``@workpath.routine`` fails at decoration time, saying what is wrong and what to do."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import workpath
from workpath import errors, routines


def test_a_routine_stays_callable_and_keeps_its_name() -> None:
    @workpath.routine("reports.part")
    def part(ctx: Any, month: str, n: int = 0) -> dict[str, Any]:
        """Build one part."""
        return {"month": month, "n": n, "ctx": ctx}

    assert isinstance(part, routines.RoutineDefinition)
    assert part.id == "reports.part"
    assert not part.is_async
    assert getattr(part, "__name__", None) == "part"  # functools.update_wrapper sets it; not in the class's type
    assert part.__doc__ == "Build one part."
    assert part("ctx", "2026-10", n=3) == {"month": "2026-10", "n": 3, "ctx": "ctx"}


def test_async_routines_are_recognised() -> None:
    @workpath.routine("reports.build")
    async def build(ctx: Any, month: str) -> str:
        return month

    assert build.is_async
    assert asyncio.run(build(None, "x")) == "x"


@pytest.mark.parametrize(
    "routine_id",
    ["", "reports..build", ".reports", "reports.", "1reports", "reports.build-v2", "reports build", "a" * 254],
)
def test_a_bad_routine_id_is_refused(routine_id: str) -> None:
    with pytest.raises(errors.RoutineDefinitionError, match=r"invalid routine ID .*: use dotted identifiers"):
        workpath.routine(routine_id)


def test_a_routine_id_must_be_a_string() -> None:
    with pytest.raises(
        errors.RoutineDefinitionError, match=re.escape("must be a string such as 'reports.build', not int")
    ):
        workpath.routine(42)  # type: ignore[arg-type]


def test_a_bare_decorator_says_to_give_an_id() -> None:
    def build(ctx: Any) -> None: ...

    with pytest.raises(
        errors.RoutineDefinitionError, match=r"needs a routine ID: write @workpath.routine\('some.id'\)"
    ):
        workpath.routine(build)  # type: ignore[arg-type]


def _no_params() -> None: ...
def _context_keyword_only(*, ctx: Any) -> None: ...
def _context_var_positional(*args: Any) -> None: ...
def _context_var_keyword(**kwargs: Any) -> None: ...
def _var_positional_params(ctx: Any, *parts: Any) -> None: ...
def _positional_only_params(ctx: Any, month: str, /) -> None: ...
def _generator(ctx: Any) -> Any:
    yield 1


async def _async_generator(ctx: Any) -> Any:
    yield 1


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_no_params, "takes no parameters; its first parameter receives the workpath.Context"),
        (
            _context_keyword_only,
            "the first parameter receives the workpath.Context and must be positional, but 'ctx' is keyword-only",
        ),
        (_context_var_positional, "must be positional, but 'args' is \\*args"),
        (_context_var_keyword, "must be positional, but 'kwargs' is \\*\\*kwargs"),
        (_var_positional_params, "params are passed by name, so \\*parts would never receive anything"),
        (_positional_only_params, "'month' is positional-only; move the '/' right after the context parameter"),
        (_generator, "is a generator function; a routine returns one result"),
        (_async_generator, "is a generator function; a routine returns one result"),
        (42, "must decorate a function, not int"),
    ],
)
def test_a_bad_signature_is_refused_with_the_reason(fn: Any, message: str) -> None:
    with pytest.raises(errors.RoutineDefinitionError, match=message):
        workpath.routine("some.routine")(fn)


def test_a_routine_cannot_be_decorated_twice() -> None:
    @workpath.routine("first.id")
    def build(ctx: Any) -> None: ...

    with pytest.raises(
        errors.RoutineDefinitionError, match=re.escape("is already routine 'first.id'; it cannot also be 'second.id'")
    ):
        workpath.routine("second.id")(build)


def test_keyword_only_params_and_any_params_are_accepted() -> None:
    @workpath.routine("ok.keyword_only")
    def keyword_only(ctx: Any, /, *, month: str) -> None: ...

    @workpath.routine("ok.any")
    async def any_params(ctx: Any, **params: Any) -> None: ...

    keyword_only.check_params({"month": "x"})
    any_params.check_params({"whatever": 1, "else": 2})


def test_the_definition_error_is_a_type_error_and_a_workpath_error() -> None:
    with pytest.raises(TypeError):
        workpath.routine("")
    with pytest.raises(workpath.WorkpathError):
        workpath.routine("")
