"""Fixtures of the chart tests: the real helm with a private home (offline, or pointed at the test control plane),
the chart, and cached renders."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering
from tests.cluster import builds, controlplane


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> rendering.Helm:
    """helm with a private home; skipped when it is not built (failed when $CI is set)."""
    return rendering.Helm(binary=rendering.require_helm(), home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def cluster_helm(
    k8s_binaries: builds.Binaries, k8s_cluster: controlplane.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> rendering.Helm:
    """helm installing into the test control plane, with a private home; skipped when it is not built."""
    return rendering.cluster_helm(k8s_binaries, k8s_cluster, tmp_path_factory.mktemp("cluster-helm-home"))


@pytest.fixture(scope="session")
def chart() -> pathlib.Path:
    return rendering.CHART


@pytest.fixture(scope="session")
def render(helm: rendering.Helm, chart: pathlib.Path) -> Callable[..., rendering.Rendered]:
    """``render(values=None)``: the chart rendered with those values (each distinct render is done once)."""
    done: dict[str, rendering.Rendered] = {}

    def rendered(values: dict[str, Any] | None = None) -> rendering.Rendered:
        key = json.dumps(values or {}, sort_keys=True)
        if key not in done:
            done[key] = rendering.Rendered(helm.template(chart, values))
        return done[key]

    return rendered


@pytest.fixture(scope="session")
def chart_app_version() -> str:
    metadata = rendering.load_documents((rendering.CHART / "Chart.yaml").read_text())[0]
    version: str = metadata["appVersion"]
    return version
