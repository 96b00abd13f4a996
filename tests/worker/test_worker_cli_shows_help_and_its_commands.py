"""``workpath`` and ``workpath worker`` show their help (each setting with its variable and default), their version,
and the commands that installed packages add."""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

import workpath
from workpath import cli

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
