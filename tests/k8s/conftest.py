"""The k8s tier: every test in this directory talks to the real control plane of ``tests.cluster``."""

from __future__ import annotations

import pathlib

import pytest

PLUGIN = "tests.cluster.fixtures"
HERE = pathlib.Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    # The fixtures are a plugin, normally enabled by `pytest_plugins` in tests/conftest.py (a conftest this deep
    # may not declare `pytest_plugins`). Registering it here too keeps `pytest tests/k8s` working on its own;
    # the plugin manager registers a module only once, whoever asks first.
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.k8s)
