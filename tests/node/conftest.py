"""Fixtures of the node tier: helm pointed at the node's control plane, the chart installed. Tests here are
marked ``node`` (and ``k8s``)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import kubernetes.client
import pytest

from tests.chart import rendering
from tests.cluster import builds, node
from tests.node import deploying

HERE = pathlib.Path(__file__).parent
TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``node``, and ``k8s`` too: the tier runs a control plane of its own (``-m "not k8s"`` leaves it out)."""
    for item in items:
        if HERE in pathlib.Path(str(item.path)).parents:
            item.add_marker(pytest.mark.node)
            item.add_marker(pytest.mark.k8s)
            # The first test pays for the node (and, after a code change, the images) and the chart's pods.
            item.add_marker(pytest.mark.timeout(TIMEOUT))


@pytest.fixture(scope="session")
def node_helm(
    k8s_binaries: builds.Binaries, node_cluster: node.NodeCluster, tmp_path_factory: pytest.TempPathFactory
) -> rendering.Helm:
    """helm installing into the real node's cluster, with a private home."""
    return rendering.cluster_helm(k8s_binaries, node_cluster.control_plane, tmp_path_factory.mktemp("node-helm-home"))


@pytest.fixture(scope="module")
def node_release(node_cluster: node.NodeCluster, node_helm: rendering.Helm) -> Iterator[deploying.Release]:
    """The chart installed (operator, two workers, all Ready) in a namespace of its own, for the test module."""
    control_plane = node_cluster.control_plane
    namespace = control_plane.create_namespace(prefix="node-chart")
    try:
        with control_plane.api() as client:
            yield deploying.install(node_helm, node_cluster, kubernetes.client.CoreV1Api(client), namespace)
    finally:
        control_plane.delete_namespace(namespace)


@pytest.fixture
def core(node_cluster: node.NodeCluster) -> Iterator[kubernetes.client.CoreV1Api]:
    with node_cluster.control_plane.api() as client:
        yield kubernetes.client.CoreV1Api(client)


@pytest.fixture
def routines(node_cluster: node.NodeCluster) -> Iterator[kubernetes.client.CustomObjectsApi]:
    with node_cluster.control_plane.api() as client:
        yield kubernetes.client.CustomObjectsApi(client)
