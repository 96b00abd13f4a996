"""The worker's settings: defaults, then WORKPATH_* variables, then flags; a token flag beats a token file, which is
read each time; the settings are frozen and checked."""

from __future__ import annotations

import pathlib

import pydantic
import pytest

from workpath import settings


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
