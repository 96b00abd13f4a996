"""A bad setting of ``workpath worker``, ``dev`` or ``operator``, from a variable or a flag, is refused before
anything starts: exit code 2 and one line naming the flag, the variable and the value."""

from __future__ import annotations

import os

import pytest

from workpath import cli

CASES = {
    "worker env": (
        ["worker", "some.module"],
        {"WORKPATH_SLOTS": "abc"},
        "workpath worker: --slots / WORKPATH_SLOTS: Input should be a valid integer, "
        "unable to parse string as an integer (got 'abc')",
    ),
    "worker flag": (
        ["worker", "some.module", "--drain-timeout", "soon"],
        {},
        "workpath worker: --drain-timeout / WORKPATH_DRAIN_TIMEOUT: Input should be a valid number, "
        "unable to parse string as a number (got 'soon')",
    ),
    "dev env": (
        ["dev", "examples.reports"],
        {"WORKPATH_HEARTBEAT_INTERVAL": "abc"},
        "workpath dev: --heartbeat-interval / WORKPATH_HEARTBEAT_INTERVAL: Input should be a valid number, "
        "unable to parse string as a number (got 'abc')",
    ),
    "dev flag": (
        ["dev", "examples.reports", "--workers", "0"],
        {},
        "workpath dev: --workers / WORKPATH_WORKERS: Input should be greater than or equal to 1 (got '0')",
    ),
    "operator env": (
        ["operator", "--namespace", "jobs"],
        {"WORKPATH_TOKEN_REVIEW": "maybe"},
        "workpath operator: --token-review / WORKPATH_TOKEN_REVIEW: Input should be a valid boolean, "
        "unable to interpret input (got 'maybe')",
    ),
    "operator flag": (
        ["operator", "--namespace", "jobs", "--port", "http"],
        {},
        "workpath operator: --port / WORKPATH_PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'http')",
    ),
    "operator service account": (
        ["operator", "--namespace", "jobs", "--allowed-service-account", "jobs"],
        {},
        "workpath operator: --allowed-service-account / WORKPATH_ALLOWED_SERVICE_ACCOUNTS: "
        "allowed ServiceAccount 'jobs' is not NAMESPACE:NAME (got ['jobs'])",
    ),
    "operator without namespaces": (
        ["operator"],
        {},
        "workpath operator: say which Routines to serve: --namespace NS (repeatable) or --all-namespaces",
    ),
    "operator with both": (
        ["operator", "--all-namespaces"],
        {"WORKPATH_NAMESPACES": "jobs"},
        "workpath operator: give --all-namespaces or --namespace, not both",
    ),
    "operator without authentication": (
        ["operator", "--all-namespaces", "--no-token-review"],
        {},
        "workpath operator: workers could not authenticate: keep --token-review or give --token (WORKPATH_TOKEN)",
    ),
}


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("WORKPATH_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("argv", "env", "line"), CASES.values(), ids=CASES.keys())
def test_a_bad_setting_exits_2_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    line: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err == line + "\n"


def test_a_secret_is_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["worker", "some.module", "--token", "   ", "--slots", "0"])
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert "--token / WORKPATH_TOKEN: the token is empty; give a token, or none at all (got ***)" in error
    assert "'   '" not in error
