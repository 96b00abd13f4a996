"""``workpath dev`` and ``workpath operator`` read their settings as the worker does: defaults, then WORKPATH_*
variables, then flags; lists are comma-separated in a variable and repeated flags on the command line."""

from __future__ import annotations

import argparse

import pydantic
import pytest

from workpath import cli
from workpath_operator.kube import settings
from workpath_operator.local import developing


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_dev_settings_come_from_env_then_flags() -> None:
    env = {"WORKPATH_WORKERS": "3", "WORKPATH_SLOTS": "4", "WORKPATH_PORT": "7000", "WORKPATH_HOST": "0.0.0.0"}
    args = parse("dev", "examples.reports", "--slots", "5", "--db", "runs.sqlite")
    loaded = developing.LocalSettings.load(env, **developing.LocalSettings.flag_values(args))
    assert (loaded.workers, loaded.slots, loaded.db) == (3, 5, "runs.sqlite")
    assert (loaded.host, loaded.port, loaded.token) == ("0.0.0.0", 7000, None)
    assert args.modules == ["examples.reports"]


def test_operator_lists_are_comma_separated_in_variables_and_repeated_flags() -> None:
    env = {"WORKPATH_NAMESPACES": "jobs, reports", "WORKPATH_ALLOWED_SERVICE_ACCOUNTS": "jobs:worker,reports:worker"}
    from_env = settings.OperatorSettings.load(env)
    assert from_env.namespaces == ("jobs", "reports")
    assert from_env.allowed_service_accounts == ("jobs:worker", "reports:worker")

    args = parse("operator", "--namespace", "a", "--namespace", "b", "--no-token-review", "--token", "shared")
    from_flags = settings.OperatorSettings.load(env, **settings.OperatorSettings.flag_values(args))
    assert from_flags.namespaces == ("a", "b")
    assert (from_flags.token_review, from_flags.token) == (False, "shared")
    assert "shared" not in repr(from_flags)


def test_operator_settings_check_across_fields_with_the_same_messages() -> None:
    with pytest.raises(pydantic.ValidationError, match="give --all-namespaces or --namespace, not both"):
        settings.OperatorSettings(namespaces=("a",), all_namespaces=True)
    with pytest.raises(pydantic.ValidationError, match="say which Routines to serve"):
        settings.OperatorSettings()
    with pytest.raises(pydantic.ValidationError, match="workers could not authenticate"):
        settings.OperatorSettings(all_namespaces=True, token_review=False)
    assert settings.OperatorSettings(all_namespaces=True, token_review=False, token="t").token == "t"
