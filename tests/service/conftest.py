"""Fixtures of the service tests: a dispatcher with default settings and an in-memory store, and fake workers
attached to it (their writer tasks are stopped after the test)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.service import fakes
from workpath_operator.service import dispatching, settings, stores


@pytest.fixture
async def dispatcher() -> dispatching.Dispatcher:
    return dispatching.Dispatcher(settings=settings.ServiceSettings(), observer=stores.MemoryRunStore())


@pytest.fixture
async def workers(dispatcher: dispatching.Dispatcher) -> AsyncIterator[fakes.FakeWorkers]:
    fleet = fakes.FakeWorkers(dispatcher)
    yield fleet
    await fleet.close()
