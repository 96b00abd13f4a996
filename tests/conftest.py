"""The whole suite: the test control plane's fixtures are a plugin, started only when a test asks for them.

Tests mirror the packages: ``worker/`` (the worker package), ``service/`` (the Kubernetes-free control plane),
``kube/`` (the Kubernetes side, unit and on the test control plane), ``testing/`` (the ``workpath.testing`` harness),
``integration/`` (real service, sockets and worker processes), ``chart/``, ``cluster/`` (the test control plane and
its proof tests), ``e2e/`` (kind).

Shared support: :mod:`tests.waiting` (``eventually``), and here a guard that fails an async test which leaves a task
running: every task it (or the code under test) started must be finished, not cancelled by the loop's teardown.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest

pytest_plugins = ["tests.cluster.fixtures"]

CONTROL_PLANE_FIXTURE = "k8s_cluster"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the test control plane, however indirectly, carries the ``k8s`` marker."""
    for item in items:
        if CONTROL_PLANE_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.k8s)


@pytest.fixture(autouse=True)
def no_leaked_tasks(request: pytest.FixtureRequest) -> None:
    """Guard async tests against leaked tasks; sync tests (and the session's control plane) have no loop to guard.

    Set up before the test's other fixtures, the guard is torn down after them: the services and workers they
    stop have to be gone by then too.
    """
    if isinstance(request.node, pytest.Function) and inspect.iscoroutinefunction(request.node.obj):
        request.getfixturevalue(tasks_left_running.__name__)


@pytest.fixture
async def tasks_left_running() -> AsyncIterator[None]:
    """Fail the test if a task started while it ran is still running when it and its fixtures are done."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    leaked = [task for task in asyncio.all_tasks() - before if task is not current and not task.done()]
    assert not leaked, f"tasks left running: {sorted(task.get_name() for task in leaked)}"
