"""The settings machinery: defaults, then WORKPATH_* variables, then flags; pydantic converts and checks them all."""

from __future__ import annotations

import argparse

import pydantic
import pytest

from workpath import settings


class SampleSettings(settings.Settings):
    """A settings class with one field of each kind."""

    count: int = pydantic.Field(default=1, ge=1)
    """How many."""

    ratio: float = 0.5
    """How much."""

    enabled: bool = False
    """Whether."""

    names: tuple[str, ...] = ()
    """Which ones."""

    secret: str | None = pydantic.Field(default=None, repr=False, min_length=8)
    """Never shown."""


def test_environment_strings_become_typed_values() -> None:
    env = {"WORKPATH_COUNT": "3", "WORKPATH_RATIO": "2.5", "WORKPATH_ENABLED": "true", "WORKPATH_NAMES": "a, b,,c"}
    loaded = SampleSettings.load(env)
    assert (loaded.count, loaded.ratio, loaded.enabled, loaded.names) == (3, 2.5, True, ("a", "b", "c"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("false", False), ("1", True), ("0", False), ("yes", True), ("no", False), ("on", True),
     ("off", False), ("TRUE", True)],
)  # fmt: skip
def test_booleans_are_read_in_the_usual_spellings(raw: str, expected: bool) -> None:
    assert SampleSettings.load({"WORKPATH_ENABLED": raw}).enabled is expected


def test_overrides_win_over_the_environment_and_empty_or_none_values_are_ignored() -> None:
    env = {"WORKPATH_COUNT": "3", "WORKPATH_RATIO": ""}
    loaded = SampleSettings.load(env, count=7, names=None)
    assert (loaded.count, loaded.ratio, loaded.names) == (7, 0.5, ())


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        SampleSettings.load({}, counts=3)


def test_explain_names_the_flag_the_variable_and_the_value() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SampleSettings.load({"WORKPATH_COUNT": "many", "WORKPATH_ENABLED": "maybe"})
    assert SampleSettings.explain(info.value) == (
        "--count / WORKPATH_COUNT: Input should be a valid integer, unable to parse string as an integer "
        "(got 'many'); --enabled / WORKPATH_ENABLED: Input should be a valid boolean, unable to interpret input "
        "(got 'maybe')"
    )


def test_explain_masks_secrets() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SampleSettings.load({"WORKPATH_SECRET": "short"})
    explained = SampleSettings.explain(info.value)
    assert explained.startswith("--secret / WORKPATH_SECRET: String should have at least 8 characters (got ***)")
    assert "short" not in explained
    assert "short" not in repr(SampleSettings(secret="short-no-more"))


def test_flags_are_made_from_the_fields_and_read_back_as_overrides() -> None:
    parser = argparse.ArgumentParser()
    SampleSettings.add_flags(parser)
    args = parser.parse_args(["--count", "4", "--enabled", "--name", "x", "--name", "y"])
    given = SampleSettings.flag_values(args)
    assert given == {"count": "4", "enabled": True, "names": ["x", "y"]}  # converted by the class, not argparse
    loaded = SampleSettings.load({"WORKPATH_COUNT": "2", "WORKPATH_RATIO": "0.25"}, **given)
    assert (loaded.count, loaded.ratio, loaded.enabled, loaded.names) == (4, 0.25, True, ("x", "y"))
    turned_off = SampleSettings.flag_values(parser.parse_args(["--no-enabled"]))
    assert SampleSettings.load({"WORKPATH_ENABLED": "1"}, **turned_off).enabled is False


def test_help_is_the_docstring_with_the_variable_and_the_default() -> None:
    assert SampleSettings.help_of("names") == "Which ones. [env WORKPATH_NAMES; default: none]"
    assert SampleSettings.help_of("enabled") == "Whether. [env WORKPATH_ENABLED; default: false]"
    assert SampleSettings.flag_name("names") == "--name"


def test_replace_checks_the_new_values() -> None:
    loaded = SampleSettings()
    assert loaded.replace(count=5).count == 5
    with pytest.raises(pydantic.ValidationError, match="greater than or equal to 1"):
        loaded.replace(count=0)
