"""Every setting has a docstring, and ``--help`` of its command shows it with its variable and default."""

from __future__ import annotations

import pytest

from workpath import cli, settings
from workpath_operator.kube import settings as kube_settings
from workpath_operator.local import developing
from workpath_operator.service import settings as service_settings

COMMANDS: dict[str, type[settings.Settings]] = {
    "worker": settings.WorkerSettings,
    "dev": developing.LocalSettings,
    "operator": kube_settings.OperatorSettings,
}


def help_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # no wrapping: a docstring is found as one line
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def every_settings_class(base: type[settings.Settings] = settings.Settings) -> set[type[settings.Settings]]:
    found = set()
    for subclass in base.__subclasses__():
        found |= {subclass, *every_settings_class(subclass)}
    return found


def test_every_settings_class_is_the_settings_of_a_command_or_extended_by_one() -> None:
    shown = {klass for cls in COMMANDS.values() for klass in cls.__mro__}
    known = every_settings_class() - {cls for cls in every_settings_class() if cls.__module__.startswith("tests.")}
    assert known <= shown
    assert service_settings.ServiceSettings in shown


@pytest.mark.parametrize(("command", "cls"), COMMANDS.items(), ids=COMMANDS.keys())
def test_help_shows_each_field_docstring_with_its_variable_and_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str, cls: type[settings.Settings]
) -> None:
    text = help_text(capsys, monkeypatch, command)
    for name, field in cls.model_fields.items():
        assert field.description, f"{cls.__name__}.{name} has no docstring"
        assert cls.flag_name(name) in text, name
        assert cls.help_of(name) in text, name
        assert f"[env {cls.env_name(name)}; default: " in cls.help_of(name)


def test_top_level_help_says_settings_are_flags_and_variables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = help_text(capsys, monkeypatch)
    assert "(--slots, WORKPATH_SLOTS)" in text
    assert "'workpath COMMAND --help' lists them" in text
