"""The leader election's state machine on a fake clock, against an in-memory Lease that behaves as the API server's
(resourceVersions, 404, 409): a candidate takes a Lease that is absent, released or expired and none other; the
leader renews it; a leader that cannot renew for the renew deadline has lost it, and does so before any standby may
take over; a leader that finds another holder has lost it at once; a released Lease is taken at the next look."""

from __future__ import annotations

import asyncio

import pytest

from tests.kube import lease_servers
from workpath_operator.kube import electing

# Lease durations and retry periods are the subject: they run on the loop's fake, fast-forwarded clock.
pytestmark = pytest.mark.looptime

TIMING = electing.Timing(lease_duration=6.0, renew_deadline=4.0, retry_period=1.0)


def elector(server: lease_servers.LeaseServer, identity: str) -> tuple[electing.Elector, lease_servers.Client]:
    client = lease_servers.Client(server)
    return electing.Elector(client, namespace="ops", name="workpath-operator", identity=identity, timing=TIMING), client


async def test_a_candidate_creates_an_absent_lease_and_holds_it() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")

    await a.acquire()

    assert a.leading
    assert server.holder == "a"
    spec = server.get()["spec"]
    assert spec["leaseDurationSeconds"] == 6
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]


async def test_a_standby_waits_while_the_leader_renews() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")
    b, _ = elector(server, "b")
    await a.acquire()
    keeping = asyncio.create_task(a.keep())

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.acquire(), timeout=60)

    assert not b.leading
    assert b.holder == "a"
    assert server.holder == "a"
    assert len(server.writes) >= 55  # one renewal per retry period
    keeping.cancel()
    await asyncio.gather(keeping, return_exceptions=True)


async def test_a_standby_takes_an_expired_lease_after_the_lease_duration() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")
    await a.acquire()  # then never renewed: its process was SIGKILLed
    b, _ = elector(server, "b")
    loop = asyncio.get_running_loop()
    began = loop.time()

    await b.acquire()

    waited = loop.time() - began
    assert TIMING.lease_duration <= waited <= TIMING.lease_duration + TIMING.retry_period
    spec = server.get()["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


async def test_a_released_lease_is_taken_at_the_next_look() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")
    b, _ = elector(server, "b")
    await a.acquire()
    keeping = asyncio.create_task(a.keep())
    acquiring = asyncio.create_task(b.acquire())
    await asyncio.sleep(30)
    assert not acquiring.done()
    loop = asyncio.get_running_loop()
    keeping.cancel()  # a graceful shutdown: renewals stop, then the Lease is released
    await asyncio.gather(keeping, return_exceptions=True)

    await a.release()
    released = loop.time()
    assert not a.leading
    assert server.holder is None
    await acquiring

    assert loop.time() - released <= TIMING.retry_period
    assert server.holder == "b"


async def test_a_leader_that_cannot_renew_gives_up_before_a_standby_takes_over() -> None:
    server = lease_servers.LeaseServer()
    a, a_client = elector(server, "a")
    b, _ = elector(server, "b")
    loop = asyncio.get_running_loop()
    await a.acquire()
    keeping = asyncio.create_task(a.keep())
    acquiring = asyncio.create_task(b.acquire())
    await asyncio.sleep(10.5)
    last_renewal = loop.time() - 0.5  # renewals happen on whole seconds
    a_client.failing = True  # the leader is cut off from the API server; the standby is not

    await keeping
    gave_up = loop.time()
    await acquiring
    took_over = loop.time()

    assert not a.leading
    assert gave_up - last_renewal == pytest.approx(TIMING.renew_deadline, abs=0.01)
    assert took_over >= last_renewal + TIMING.lease_duration > gave_up
    assert server.holder == "b"


async def test_a_leader_that_finds_another_holder_has_lost_at_once() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")
    await a.acquire()
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(2.5)
    usurped = server.get()
    usurped["spec"]["holderIdentity"] = "c"
    server.replace(usurped)
    loop = asyncio.get_running_loop()
    began = loop.time()

    await keeping

    assert loop.time() - began <= TIMING.retry_period
    assert not a.leading
    assert server.holder == "c"


async def test_of_two_racing_standbys_one_takes_the_lease() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")
    b, _ = elector(server, "b")

    done, pending = await asyncio.wait(
        {asyncio.create_task(a.acquire()), asyncio.create_task(b.acquire())}, timeout=TIMING.lease_duration - 1
    )

    assert len(done) == 1
    assert [e.identity for e in (a, b) if e.leading] == [server.holder]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def test_a_restarted_process_with_the_same_identity_leads_again_at_once() -> None:
    server = lease_servers.LeaseServer()
    first, _ = elector(server, "pod-0")
    await first.acquire()  # then its container was SIGKILLed; the kubelet restarts it in the same pod
    again, _ = elector(server, "pod-0")
    loop = asyncio.get_running_loop()
    began = loop.time()

    await again.acquire()

    assert loop.time() == began
    assert server.get()["spec"]["leaseTransitions"] == 0


async def test_release_leaves_a_lease_held_by_another_alone() -> None:
    server = lease_servers.LeaseServer()
    a, _ = elector(server, "a")
    await a.acquire()
    usurped = server.get()
    usurped["spec"]["holderIdentity"] = "b"
    server.replace(usurped)

    await a.release()

    assert server.holder == "b"


async def test_a_leader_renews_through_a_short_outage() -> None:
    server = lease_servers.LeaseServer()
    a, a_client = elector(server, "a")
    await a.acquire()
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(3.5)
    a_client.failing = True  # renewals at 4 and 5 fail; the one at 6 is within the deadline (3 + 4)
    await asyncio.sleep(2)
    a_client.failing = False
    await asyncio.sleep(10)

    assert not keeping.done()
    assert a.leading
    keeping.cancel()
    await asyncio.gather(keeping, return_exceptions=True)
