"""A replica that stands by answers /healthz but not /readyz (so no Service sends it workers) until it leads, then
frees the port for the directive service; while it leads, losing the Lease calls for its end at once, and leaving
normally releases the Lease."""

from __future__ import annotations

import asyncio

import aiohttp

from tests import waiting
from tests.cluster import processes
from tests.kube import lease_servers
from workpath_operator.kube import electing

TIMING = electing.Timing(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


def elector(server: lease_servers.LeaseServer, identity: str) -> tuple[electing.Elector, lease_servers.Client]:
    client = lease_servers.Client(server)
    return electing.Elector(client, namespace="ops", name="workpath-operator", identity=identity, timing=TIMING), client


async def status(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def test_a_standby_is_alive_not_ready_and_frees_the_port_once_it_leads() -> None:
    server = lease_servers.LeaseServer()
    leader, _ = elector(server, "a")
    await leader.acquire()
    standby, _ = elector(server, "b")
    port = processes.free_port()
    standing = asyncio.create_task(electing.stand_by(standby, host="127.0.0.1", port=port))
    async with aiohttp.ClientSession() as http:
        await waiting.eventually(lambda: standby.holder == "a")
        assert await status(http, f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert await status(http, f"http://127.0.0.1:{port}/readyz") == (503, "standing by: a leads\n")

        await leader.release()
        assert await asyncio.wait_for(standing, timeout=5) is True

    assert standby.leading
    free = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)  # the directive service can listen
    free.close()
    await free.wait_closed()


async def test_losing_the_lease_calls_for_the_end_and_a_normal_end_releases_it() -> None:
    server = lease_servers.LeaseServer()
    a, a_client = elector(server, "a")
    await a.acquire()
    lost = asyncio.Event()

    async with electing.leading(a, on_lost=lost.set):
        await asyncio.sleep(3 * TIMING.retry_period)
        assert server.holder == "a" and not lost.is_set()
        a_client.failing = True
        await asyncio.wait_for(lost.wait(), timeout=5 * TIMING.renew_deadline)
        assert not a.leading

    b, _ = elector(server, "b")
    await b.acquire()  # once the Lease a could not renew has expired
    async with electing.leading(b, on_lost=lost.clear) as leadership:
        assert server.holder == "b"
        await leadership.release()  # as soon as the service stopped writing
        assert server.holder is None  # released, not left to expire
    assert server.holder is None
    assert lost.is_set()  # a normal end is not a loss
