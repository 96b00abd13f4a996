"""``workpath worker`` refuses bad input with exit code 2 and one clear line naming the flag, variable or module."""

from __future__ import annotations

import pathlib

import pytest

from workpath import cli


def test_a_bad_setting_exits_2_naming_the_flag_and_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKPATH_SLOTS", "0")
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "some.module"])
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert "--slots / WORKPATH_SLOTS: Input should be greater than or equal to 1 (got '0')" in error


def test_a_value_that_is_not_a_number_exits_2_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKPATH_SLOTS", "abc")
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "some.module"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "workpath worker: --slots / WORKPATH_SLOTS: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')\n"
    )


def test_a_bad_module_exits_2_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "unit_no_such_module", "--app-dir", str(tmp_path), "--url", "ws://127.0.0.1:1/x"])
    assert info.value.code == 2
    assert "cannot import routine module 'unit_no_such_module'" in capsys.readouterr().err
