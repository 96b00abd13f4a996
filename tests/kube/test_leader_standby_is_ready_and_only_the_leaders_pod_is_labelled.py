"""A replica that stands by is alive at once and ready once its own pod carries no leader label (a container restarted
in the old leader's pod finds the label there and removes it first), until it leads, then frees the port for the
directive service. The leader labels its pod before it serves (and makes it the last its ReplicaSet removes); losing
the Lease calls for its end at once; leaving normally releases the Lease and then takes the label off. Outside a pod
there is nothing to label, and each step says so; a label the API server refuses for good stops the replica."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from tests import waiting
from tests.cluster import processes
from tests.kube import lease_servers, leases
from workpath_operator.kube import clients, electing

TIMING = electing.Timing(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)
NAMESPACE = "ops"
LEADER = {electing.LEADER_LABEL: "true"}


def elector(server: lease_servers.LeaseServer, identity: str) -> tuple[electing.Elector, lease_servers.Client]:
    client = lease_servers.Client(server)
    candidate = electing.Elector(client, namespace=NAMESPACE, name=leases.NAME, identity=identity, timing=TIMING)
    return candidate, client


def label(client: lease_servers.Client, pod: str | None) -> electing.LeaderLabel:
    own = None if pod is None else (NAMESPACE, pod)
    return electing.LeaderLabel(client, pod=own, retry_period=TIMING.retry_period)


async def status(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def listening(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """The first answer of ``url`` once something listens there."""
    for _ in range(100):
        try:
            return await status(http, url)
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(TIMING.retry_period / 2)
    raise AssertionError(f"nothing listens at {url}")


async def test_a_standby_removes_a_stale_label_then_is_ready_and_frees_the_port_once_it_leads() -> None:
    server = lease_servers.LeaseServer()
    server.add_pod("pod-b", labels={"app": "op"} | LEADER)  # its container led before it restarted
    leader, _ = elector(server, "a")
    await leader.acquire()
    standby, standby_client = elector(server, "b")
    standby_client.pods_failing = True
    port = processes.free_port()
    standing = asyncio.create_task(
        electing.stand_by(standby, label=label(standby_client, "pod-b"), host="127.0.0.1", port=port)
    )
    async with aiohttp.ClientSession() as http:
        healthz, readyz = f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{port}/readyz"
        assert await listening(http, healthz) == (200, "ok\n")
        assert await status(http, readyz) == (503, "removing the leader label from this pod\n")
        assert server.labels("pod-b") == {"app": "op"} | LEADER

        standby_client.pods_failing = False
        await waiting.eventually(lambda: server.labels("pod-b") == {"app": "op"}, what="the stale label removed")
        await waiting.eventually(lambda: standby.holder == "a", what="the standby to see the leader")
        assert await status(http, readyz) == (200, "standing by: a leads\n")

        await leader.release()
        assert await asyncio.wait_for(standing, timeout=5) is True

    assert standby.leading
    assert server.labels("pod-b") == {"app": "op"}  # leading is not labelled yet: that is before serving
    free = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)  # the directive service can listen
    free.close()
    await free.wait_closed()


async def test_the_leader_is_labelled_before_it_serves_and_unlabelled_after_it_releases() -> None:
    server = lease_servers.LeaseServer()
    server.add_pod("pod-a")
    a, a_client = elector(server, "a")
    await a.acquire()

    async with electing.leading(a, label=label(a_client, "pod-a"), on_lost=lambda: None) as leadership:
        assert server.labels("pod-a") == LEADER
        assert server.pods["pod-a"]["annotations"] == {electing.DELETION_COST_ANNOTATION: "1000"}
        await leadership.release()
        assert server.holder is None
        assert server.labels("pod-a") == {}
        assert server.pods["pod-a"]["annotations"] == {}
        server.add_pod("pod-a", labels=LEADER)
        await leadership.release()  # the first call did it all
        assert server.labels("pod-a") == LEADER


async def test_losing_the_lease_calls_for_the_end_and_a_normal_end_releases_it() -> None:
    server = lease_servers.LeaseServer()
    server.add_pod("pod-a")
    server.add_pod("pod-b")
    a, a_client = elector(server, "a")
    await a.acquire()
    lost = asyncio.Event()

    async with electing.leading(a, label=label(a_client, "pod-a"), on_lost=lost.set):
        await asyncio.sleep(3 * TIMING.retry_period)
        assert server.holder == "a" and not lost.is_set()
        a_client.failing = True
        await asyncio.wait_for(lost.wait(), timeout=5 * TIMING.renew_deadline)
        assert not a.leading
    assert server.labels("pod-a") == LEADER  # cut off: its restarted container takes it off

    b, b_client = elector(server, "b")
    await b.acquire()  # once the Lease a could not renew has expired
    async with electing.leading(b, label=label(b_client, "pod-b"), on_lost=lost.clear) as leadership:
        assert server.holder == "b"
        await leadership.release()  # as soon as the service stopped writing
        assert server.holder is None  # released, not left to expire
    assert server.holder is None
    assert lost.is_set()  # a normal end is not a loss


async def test_outside_a_pod_nothing_is_labelled_and_each_step_says_so(caplog: pytest.LogCaptureFixture) -> None:
    server = lease_servers.LeaseServer()
    a, a_client = elector(server, "a")
    await a.acquire()
    outside = label(a_client, None)

    with caplog.at_level(logging.INFO, logger="workpath.electing"):
        async with electing.leading(a, label=outside, on_lost=lambda: None):
            assert server.holder == "a"

    assert server.holder is None
    skipped = [r.getMessage() for r in caplog.records if "not in a pod" in r.getMessage()]
    assert len(skipped) == 2  # the label set, then removed


async def test_a_label_refused_for_good_stops_the_standby_with_the_reason() -> None:
    server = lease_servers.LeaseServer()
    server.add_pod("pod-b", labels=LEADER)
    server.pod_refusal = 403
    standby, client = elector(server, "b")

    with pytest.raises(clients.ApiError) as refused:
        await asyncio.wait_for(
            electing.stand_by(standby, label=label(client, "pod-b"), host="127.0.0.1", port=processes.free_port()),
            timeout=5,
        )

    assert refused.value.status == 403
    assert server.lease is None  # it never stood for the Lease
