"""The whole suite: the test control plane's fixtures are a plugin, started only when a test asks for them.

Tests mirror the packages: ``worker/`` (the worker package), ``service/`` (the Kubernetes-free control plane),
``kube/`` (the Kubernetes side, unit and on the test control plane), ``testing/`` (the ``workpath.testing`` harness),
``integration/`` (real service, sockets and worker processes), ``chart/``, ``cluster/`` (the test control plane and
its proof tests), ``e2e/`` (kind).
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.cluster.fixtures"]

CONTROL_PLANE_FIXTURE = "k8s_cluster"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the test control plane, however indirectly, carries the ``k8s`` marker."""
    for item in items:
        if CONTROL_PLANE_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.k8s)
