"""The pytest plugin of the k8s test tier: a real control plane and a process-kubelet, started on demand.

Enable it in ``tests/conftest.py`` with ``pytest_plugins = ["tests.cluster.fixtures"]``. Nothing starts unless a
test asks for a fixture. Without the binaries, the tests are skipped, or fail when ``$CI`` is set.

    @pytest.mark.k8s
    def test_something(k8s_cluster, k8s_namespace, process_kubelet):
        k8s_cluster.kubectl("-n", k8s_namespace, "create", "deployment", "web", "--image=x", "--", "sleep", "60")
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import kubernetes.client
import pytest

from tests.cluster import builds, controlplane, errors, kubelet, node, prerequisites, restoring

NODE_NAMES = ("process-node-1", "process-node-2")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def k8s_binaries() -> builds.Binaries:
    """The control-plane binaries built by ``tests/cluster/build.sh``."""
    try:
        return builds.Binaries.find()
    except errors.BinariesMissingError as e:
        if _in_ci():
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def k8s_cluster(k8s_binaries: builds.Binaries) -> Iterator[controlplane.Cluster]:
    """etcd + kube-apiserver + kube-controller-manager with the project's CRDs installed, for the session."""
    with controlplane.Cluster.start(binaries=k8s_binaries) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def process_kubelet(k8s_cluster: controlplane.Cluster) -> Iterator[kubelet.ProcessKubelet]:
    """Two Ready nodes whose pods run as local processes (and which schedule pending pods), for the session."""
    with kubelet.ProcessKubelet(k8s_cluster, node_names=NODE_NAMES).start() as running:
        yield running


@pytest.fixture(scope="session")
def node_binaries(k8s_binaries: builds.Binaries) -> node.NodeBinaries:
    """The node tier's binaries, once the host is known to be fit for a real node. Skipped (failed under CI) without
    root, cgroups, the node's packages or binaries, with a message that names what is missing."""
    try:
        prerequisites.check_host()
        return node.NodeBinaries.find(k8s_binaries)
    except (prerequisites.PrerequisiteError, errors.BinariesMissingError) as e:
        if _in_ci():
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def node_cluster(k8s_binaries: builds.Binaries, node_binaries: node.NodeBinaries) -> Iterator[node.NodeCluster]:
    """A control plane of its own plus one real node (kubelet, containerd, kube-proxy, scheduler, CoreDNS), with the
    project's images built here and imported; the host is checked to be as it was after the session."""
    before = restoring.observe()
    try:
        running = node.NodeCluster.start(binaries=k8s_binaries)
    except restoring.NodeBusyError as e:
        pytest.skip(str(e))  # Another session's node (even under CI: the machine is shared, not broken).
    with running:
        yield running
    changed = restoring.differences(before, restoring.observe())
    assert not changed, f"The node's teardown left the host changed: {changed}"


@pytest.fixture
def node_namespace(node_cluster: node.NodeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace on the real node's cluster, named after the test, deleted after the test."""
    node_cluster.check_alive()
    name = node_cluster.control_plane.create_namespace(prefix=request.node.name[:40])
    yield name
    node_cluster.control_plane.delete_namespace(name)


@pytest.fixture
def k8s_namespace(k8s_cluster: controlplane.Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, deleted (with everything in it) after the test."""
    k8s_cluster.check_alive()
    name = k8s_cluster.create_namespace(prefix=request.node.name[:40])
    yield name
    k8s_cluster.delete_namespace(name)


@pytest.fixture
def k8s_api(k8s_cluster: controlplane.Cluster) -> Iterator[kubernetes.client.ApiClient]:
    """An admin API client (the synchronous ``kubernetes`` library) for the test."""
    with k8s_cluster.api() as api:
        yield api


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a test with pods fails, attach the output of its namespace's pod processes to the report."""
    report: pytest.TestReport = yield
    funcargs = getattr(item, "funcargs", {})
    running, namespace = funcargs.get("process_kubelet"), funcargs.get("k8s_namespace")
    if report.failed and isinstance(running, kubelet.ProcessKubelet) and isinstance(namespace, str):
        for process in running.processes(namespace):
            output = running.logs(process.namespace, process.name)
            report.sections.append((f"pod {process.namespace}/{process.name} (exit code {process.returncode})", output))
    return report
