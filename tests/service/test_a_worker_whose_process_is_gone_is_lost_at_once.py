"""A worker whose process is known gone (its pod deleted or its container terminated, its local process exited) is
lost at once: its runs are queued again with the cause, not after its reconnect grace period. While its connection
is still open, it is lost the moment that connection closes; a new connection of the same worker ID (a restarted
process) keeps what it holds."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching, runs, sessions

GONE = "was lost: pod ns/w-1: its container worker was OOMKilled (exit code 137)"


def close(dispatcher: dispatching.Dispatcher, session: sessions.WorkerSession) -> None:
    """The worker's connection closes (the service read its end)."""
    dispatcher.roster.detach(session, cast(web.WebSocketResponse, session.ws))


async def test_a_disconnected_worker_is_lost_at_once_with_the_cause(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    doomed = workers.attach("w-1", slots=2)
    batch = [dispatcher.submit(fakes.spec()) for _ in range(2)]
    assert len(await workers.starts(doomed)) == 2
    close(dispatcher, doomed)  # in its reconnect grace period (30 s): its runs wait for it

    assert dispatcher.lose_worker("w-1", reason=GONE)
    assert "w-1" not in dispatcher.sessions
    for run in batch:
        assert (run.phase, run.reason, run.worker) == (runs.Phase.PENDING, runs.Reason.WORKER_LOST, None)
        assert run.message.startswith(f"worker w-1 {GONE}; no connected worker can run a.b")
    spare = workers.attach("w-2", slots=2)
    assert sorted(s.run_id for s in await workers.starts(spare)) == sorted(r.run_id for r in batch)
    assert all(run.attempt == 2 for run in batch)


async def test_a_connected_worker_is_lost_when_its_connection_closes(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    doomed = workers.attach("w-1", slots=1)
    run = dispatcher.submit(fakes.spec())
    await workers.starts(doomed)

    assert not dispatcher.lose_worker("w-1", reason=GONE)
    assert run.worker == "w-1"
    close(dispatcher, doomed)
    assert "w-1" not in dispatcher.sessions
    assert run.reason is runs.Reason.WORKER_LOST
    assert run.message.startswith(f"worker w-1 {GONE}; no connected worker")


async def test_a_new_connection_of_the_worker_id_keeps_its_runs(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    first = workers.attach("w-1", slots=1)
    run = dispatcher.submit(fakes.spec())
    await workers.starts(first)
    dispatcher.lose_worker("w-1", reason=GONE)  # while connected: the news may be about this very process

    again = workers.attach("w-1", slots=1, running=[(run, 1)])  # it was not: it is still there
    close(dispatcher, again)  # and a later drop of its connection is an ordinary disconnect
    assert dispatcher.sessions[directives.WorkerID("w-1")] is again
    assert (run.worker, run.attempt) == ("w-1", 1)
    assert run.reason is not runs.Reason.WORKER_LOST


async def test_an_unknown_worker_changes_nothing(dispatcher: dispatching.Dispatcher) -> None:
    assert not dispatcher.lose_worker("nobody", reason=GONE)
    assert not dispatcher.sessions
