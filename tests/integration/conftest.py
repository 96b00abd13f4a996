"""Fixtures of the integration tests: a real directive service on 127.0.0.1, real worker processes, a TCP proxy.

A test that needs workers asks for ``fleet`` and starts them with :meth:`fleets.WorkerFleet.start`, which returns
once they are connected.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from tests.integration import fleets, proxies
from workpath_operator.service import authenticating, serving, settings, stores


@pytest.fixture
def service_settings() -> settings.ServiceSettings:
    return settings.ServiceSettings(
        host="127.0.0.1",
        port=0,
        token=fleets.TOKEN,
        heartbeat_interval=0.2,
        heartbeat_misses=3,
        reconnect_grace=10.0,
    )


@pytest.fixture
async def service(service_settings: settings.ServiceSettings) -> AsyncIterator[serving.DirectiveService]:
    svc = serving.DirectiveService(
        settings=service_settings,
        store=stores.MemoryRunStore(),
        authenticator=authenticating.SharedTokenAuthenticator(fleets.TOKEN),
    )
    async with svc:
        yield svc


@pytest.fixture
async def fleet(service: serving.DirectiveService, tmp_path: pathlib.Path) -> AsyncIterator[fleets.WorkerFleet]:
    """Worker processes for ``service``; all of them are killed, and their output shown, when the test ends."""
    workers = fleets.WorkerFleet(service, logs=tmp_path)
    try:
        yield workers
    finally:
        await workers.close()
        for worker in workers.processes:
            print(f"----- {worker.worker_id} (pid {worker.pid}) -----\n{worker.output()}")


@pytest.fixture
async def proxy(service: serving.DirectiveService) -> AsyncIterator[proxies.TcpProxy]:
    tcp = proxies.TcpProxy("127.0.0.1", service.port)
    await tcp.start()
    try:
        yield tcp
    finally:
        await tcp.close()
