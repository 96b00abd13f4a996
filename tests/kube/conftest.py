"""Fixtures of the operator tests on the test control plane: the harness, and an operator started on it.

>>> def test_something(operator, harness, k8s_api, k8s_namespace):
...     harness.start_worker("w1")
...     routines.create(k8s_api, k8s_namespace, "r", routineID="k8s.flaky")

Every process the harness started is stopped when the test ends; if the test failed, the tails of their logs are
added to its report.
"""

from __future__ import annotations

import pathlib
from collections.abc import Generator, Iterator

import pytest

from tests.cluster import controlplane
from tests.kube import operators


@pytest.fixture
def harness(
    k8s_cluster: controlplane.Cluster, k8s_namespace: str, tmp_path: pathlib.Path
) -> Iterator[operators.Harness]:
    """Operators and workers for the test's namespace, with their logs in ``tmp_path``; none outlives the test."""
    with operators.Harness(k8s_cluster, k8s_namespace, tmp_path) as running:
        yield running


@pytest.fixture
def operator(harness: operators.Harness) -> operators.OperatorProcess:
    """An operator serving the test's namespace, with the harness's quick settings, ready (``/readyz`` answers)."""
    return harness.start_operator()


@pytest.fixture
def pool_operator(harness: operators.Harness) -> operators.OperatorProcess:
    """An operator that also runs WorkerPools: their pods' workers reach it at the harness's URL."""
    return harness.start_operator(args=("--worker-url", harness.url))


@pytest.fixture
def markers(tmp_path: pathlib.Path) -> pathlib.Path:
    """A folder for the marker files of tests.kube.workload's routines (what ran, which attempt, where)."""
    folder = tmp_path / "markers"
    folder.mkdir()
    return folder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a test with a harness fails, attach the tails of its operators' and workers' logs to the report."""
    report: pytest.TestReport = yield
    harness = getattr(item, "funcargs", {}).get("harness")
    if report.failed and isinstance(harness, operators.Harness):
        report.sections.extend(harness.logs())
    return report
