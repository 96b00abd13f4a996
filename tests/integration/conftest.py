from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Callable

import pytest

from tests.integration import fleets, proxies
from workpath_operator.service import authenticating, runs, serving, settings, stores

TOKEN = "integration-test-token"


async def eventually(condition: Callable[[], object], *, timeout: float = 15.0, what: str = "condition") -> None:
    """Wait until ``condition()`` is true, checking often; fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def service_settings() -> settings.ServiceSettings:
    return settings.ServiceSettings(
        host="127.0.0.1",
        port=0,
        token=TOKEN,
        heartbeat_interval=0.2,
        heartbeat_misses=3,
        reconnect_grace=10.0,
    )


@pytest.fixture
async def service(service_settings: settings.ServiceSettings) -> AsyncIterator[serving.DirectiveService]:
    svc = serving.DirectiveService(
        settings=service_settings,
        store=stores.MemoryRunStore(),
        authenticator=authenticating.SharedTokenAuthenticator(TOKEN),
    )
    async with svc:
        yield svc


@pytest.fixture
async def fleet(service: serving.DirectiveService, tmp_path: pathlib.Path) -> AsyncIterator[fleets.WorkerFleet]:
    workers = fleets.WorkerFleet(url=service.url, token=TOKEN, logs=tmp_path)
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


async def connected(service: serving.DirectiveService, *worker_ids: str, timeout: float = 20.0) -> None:
    """Wait until these workers have said v1.ready."""
    sessions = service.dispatcher.sessions
    await eventually(
        lambda: all(w in sessions and sessions[w].connected for w in worker_ids),
        timeout=timeout,
        what=f"workers {worker_ids} to connect",
    )


async def finished(service: serving.DirectiveService, run: runs.Run, timeout: float = 20.0) -> runs.Run:
    return await asyncio.wait_for(service.dispatcher.wait_finished(run), timeout)


def submit(service: serving.DirectiveService, routine_id: str, **params: object) -> runs.Run:
    return service.dispatcher.submit(runs.RunSpec.model_validate({"routineID": routine_id, "params": params}))


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every task a test (or the service under test) started is finished when it ends."""
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and t not in before and not t.done()]
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"
