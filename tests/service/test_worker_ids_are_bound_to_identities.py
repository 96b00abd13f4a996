"""A worker ID is bound to the identity that first connected with it (its pod, else its user; the shared token is
one identity for all who know it): another identity announcing it while its session lasts (connected, or within
the reconnect grace period) is refused with ``worker_id_refused`` and changes nothing; the same pod reconnecting
keeps its runs; once the session is gone, the ID is free. A pod's token may only announce the pod's own name."""

from __future__ import annotations

import pytest

from tests.service import fakes
from workpath import directives, errors
from workpath_operator.service import authenticating, dispatching, gatekeeping

POD_A = authenticating.Identity(
    "system:serviceaccount:jobs:worker", kubernetes=True, pod_name="worker-a", pod_uid="uid-a"
)
POD_B = authenticating.Identity(
    "system:serviceaccount:jobs:worker", kubernetes=True, pod_name="worker-b", pod_uid="uid-b"
)
ACCOUNT = authenticating.Identity("system:serviceaccount:jobs:worker", kubernetes=True)


async def test_a_pod_is_held_by_its_uid_a_user_by_its_name_the_shared_token_by_itself() -> None:
    assert POD_A.holder == "pod:uid-a"
    assert POD_A.holder != POD_B.holder  # same ServiceAccount, another pod
    assert ACCOUNT.holder == "user:system:serviceaccount:jobs:worker"
    assert authenticating.SHARED_TOKEN.holder == "shared-token"
    # A Kubernetes user who happens to be named like the shared token is not it.
    assert authenticating.Identity("shared-token", kubernetes=True).holder != authenticating.SHARED_TOKEN.holder


async def test_a_pod_announces_its_own_name_only() -> None:
    gatekeeping.check_worker_id(POD_A, directives.WorkerID("worker-a"))
    gatekeeping.check_worker_id(ACCOUNT, directives.WorkerID("anything"))  # no pod: no name to match
    with pytest.raises(errors.DirectiveError) as refused:
        gatekeeping.check_worker_id(POD_B, directives.WorkerID("worker-a"))
    assert refused.value.code == directives.ErrorCode.WORKER_ID_REFUSED
    assert "worker-b" in refused.value.message and "metadata.name" in refused.value.message


async def test_another_identity_cannot_take_a_connected_worker_id_and_changes_nothing(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    run = dispatcher.submit(fakes.spec())
    holder = workers.attach("worker-a", slots=2, holder=POD_A.holder)
    (start,) = await workers.starts(holder)
    connection = holder.ws

    for intruder in (POD_B, ACCOUNT, authenticating.SHARED_TOKEN):
        with pytest.raises(errors.DirectiveError) as refused:
            workers.attach("worker-a", slots=50, routines=("*",), holder=intruder.holder)
        assert refused.value.code == directives.ErrorCode.WORKER_ID_REFUSED
        assert "taken" in refused.value.message

    assert dispatcher.roster.sessions[directives.WorkerID("worker-a")] is holder
    assert (holder.ws, holder.slots, holder.holder) == (connection, 2, POD_A.holder)
    assert set(holder.runs) == {run.run_id}
    workers.complete(holder, start)
    assert run.phase.finished and run.result == start.params and run.worker == "worker-a"


async def test_a_worker_id_stays_bound_through_the_grace_period_and_is_freed_with_its_session(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    run = dispatcher.submit(fakes.spec())
    holder = workers.attach("worker-a", holder=POD_A.holder)
    (start,) = await workers.starts(holder)
    assert holder.ws is not None
    dispatcher.roster.detach(holder, holder.ws)  # disconnected: its runs wait for it

    with pytest.raises(errors.DirectiveError):
        workers.attach("worker-a", holder=ACCOUNT.holder)
    assert set(holder.runs) == {run.run_id}

    back = workers.attach("worker-a", holder=POD_A.holder, running=[(run, start.attempt)])
    assert back is holder and set(back.runs) == {run.run_id} and run.attempt == start.attempt

    dispatcher.roster.lose(back, "is gone")  # e.g. its grace period passed: the ID is free again
    other = workers.attach("worker-a", holder=ACCOUNT.holder)
    assert other is not holder and other.holder == ACCOUNT.holder


async def test_shared_token_workers_are_one_identity(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    first = workers.attach("w", holder=authenticating.SHARED_TOKEN.holder)
    again = workers.attach("w", holder=authenticating.SHARED_TOKEN.holder)  # replaces the connection, as before
    assert again is first
