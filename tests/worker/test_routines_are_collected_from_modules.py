"""A worker is given modules; it runs the routine definitions found in them. No global registry."""

from __future__ import annotations

import pathlib
import sys
import textwrap
import types
from collections.abc import Iterator
from typing import Any

import pytest

import workpath
from workpath import errors, routines


def module(name: str, **attributes: Any) -> types.ModuleType:
    made = types.ModuleType(name)
    made.__dict__.update(attributes)
    return made


@workpath.routine("reports.build")
async def build(ctx: Any) -> None: ...


@workpath.routine("reports.part")
def part(ctx: Any) -> None: ...


def test_definitions_are_found_as_module_attributes_by_id() -> None:
    found = routines.collect([module("a", build=build, helper=len, value=3), module("b", part=part)])
    assert found == {"reports.build": build, "reports.part": part}


def test_the_same_definition_reexported_counts_once() -> None:
    found = routines.collect([module("a", build=build), module("b", build=build, alias=build)])
    assert found == {"reports.build": build}


def test_two_definitions_with_one_id_are_refused_naming_both() -> None:
    @workpath.routine("reports.build")
    async def other_build(ctx: Any) -> None: ...

    with pytest.raises(errors.RoutineDefinitionError) as info:
        routines.collect([module("a", build=build), module("b", build=other_build)])
    message = str(info.value)
    assert "two routines have the ID 'reports.build'" in message
    assert "build" in message and "other_build" in message
    assert "give each its own ID" in message


def test_a_module_without_routines_is_refused() -> None:
    with pytest.raises(errors.RoutineDefinitionError, match="module 'empty' defines no routines"):
        routines.collect([module("empty", helper=len)])


@pytest.fixture
def importable(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("unit_routines_")]:
            del sys.modules[name]


def test_modules_are_imported_by_name(importable: pathlib.Path) -> None:
    (importable / "unit_routines_one.py").write_text(
        textwrap.dedent(
            """
            import workpath

            @workpath.routine("one.hello")
            async def hello(ctx, name: str) -> str:
                return f"hello {name}"
            """
        )
    )
    found = routines.load(["unit_routines_one"])
    assert list(found) == ["one.hello"]


def test_a_module_that_cannot_be_imported_is_named(importable: pathlib.Path) -> None:
    with pytest.raises(errors.RoutineDefinitionError, match="cannot import routine module 'unit_routines_missing'"):
        routines.load(["unit_routines_missing"])


def test_a_bad_routine_fails_the_import(importable: pathlib.Path) -> None:
    (importable / "unit_routines_bad.py").write_text(
        "import workpath\n\n@workpath.routine('bad.one')\ndef bad(*, ctx):\n    pass\n"
    )
    with pytest.raises(errors.RoutineDefinitionError, match="must be positional"):
        routines.load(["unit_routines_bad"])


def test_no_modules_is_refused() -> None:
    with pytest.raises(errors.RoutineDefinitionError, match="no routine modules given"):
        routines.load([])
