"""``workpath`` and ``workpath worker``: help, settings from env and flags, clear usage errors."""

from __future__ import annotations

import argparse
import importlib.metadata
import pathlib

import pydantic
import pytest

import workpath
from workpath import cli, settings

FLAGS = {
    "url": "ws://127.0.0.1:7740/v1/workers",
    "token": "none",
    "token-file": "none",
    "slots": "10",
    "pool": "default",
    "worker-id": "<hostname>-<pid>",
    "drain-timeout": "30.0",
    "log-level": "info",
}


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # unwrapped


def test_worker_help_shows_each_setting_with_its_env_name_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "worker")
    assert "MODULE [MODULE ...]" in text
    for flag, default in FLAGS.items():
        env = "WORKPATH_" + flag.upper().replace("-", "_")
        assert f"--{flag} " in text
        assert f"[env {env}; default: {default}]" in text, flag


def test_top_level_help_lists_the_worker_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "worker run a worker with the routines of some modules" in help_text(capsys)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    assert "usage: workpath" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"workpath {workpath.__version__}"


def add_hello_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("hello", help="say hello")
    parser.set_defaults(func=lambda args: 7)


def test_commands_come_from_entry_points_and_broken_ones_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    group = cli.ENTRY_POINT_GROUP
    commands = [
        importlib.metadata.EntryPoint(name="broken", value="workpath_no_such_module:add_command", group=group),
        importlib.metadata.EntryPoint(name="hello", value=f"{__name__}:add_hello_command", group=group),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: commands)
    text = cli.build_parser().format_help()
    assert "hello" in text and "worker" in text and "broken" not in text
    with pytest.raises(SystemExit) as info:
        cli.main(["hello"])
    assert info.value.code == 7


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


def test_settings_come_from_defaults_then_env_then_flags() -> None:
    env = {"WORKPATH_SLOTS": "50", "WORKPATH_POOL": "big", "WORKPATH_DRAIN_TIMEOUT": "5"}
    loaded = settings.WorkerSettings.load(env, pool="gpu", url=None)
    assert (loaded.slots, loaded.pool, loaded.drain_timeout) == (50, "gpu", 5.0)
    assert loaded.url == "ws://127.0.0.1:7740/v1/workers"
    assert loaded.worker_id  # <hostname>-<pid>


def test_a_token_flag_replaces_a_token_file_from_the_environment(tmp_path: pathlib.Path) -> None:
    env = {"WORKPATH_TOKEN_FILE": str(tmp_path / "token")}
    loaded = settings.WorkerSettings.load(env, token="from-flag")
    assert loaded.token_file is None
    assert loaded.read_token() == "from-flag"
    assert "from-flag" not in repr(loaded)  # a secret


def test_the_token_file_is_read_each_time(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "token"
    loaded = settings.WorkerSettings.load({}, token_file=str(path))
    path.write_text("one\n")
    assert loaded.read_token() == "one"
    path.write_text("two")
    assert loaded.read_token() == "two"


def test_settings_are_frozen_and_checked() -> None:
    loaded = settings.WorkerSettings()
    with pytest.raises(pydantic.ValidationError):
        loaded.slots = 3  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="should match pattern"):
        settings.WorkerSettings(url="http://example.com")
    with pytest.raises(pydantic.ValidationError, match="backoff_cap"):
        settings.WorkerSettings(backoff_base=2, backoff_cap=1)
