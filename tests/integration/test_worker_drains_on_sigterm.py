"""SIGTERM drains a worker: it takes no new runs, finishes what it can, hands back the rest, and exits 0."""

from __future__ import annotations

import pathlib
import signal

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives
from workpath_operator.service import runs, serving


async def test_a_draining_worker_finishes_its_runs_and_exits_zero(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    (tmp_path / "markers").mkdir()
    (worker,) = await fleet.start("leaving", slots=2, args=["--drain-timeout", "30"])
    run = submitting.submit(service, "test.gate", markers=str(tmp_path / "markers"), gate=str(gate))
    await waiting.eventually(lambda: run.phase is runs.Phase.RUNNING, what="the run to start")

    worker.signal(signal.SIGTERM)
    session = service.dispatcher.sessions[directives.WorkerID("leaving")]
    await waiting.eventually(lambda: session.draining, what="the worker to announce it is draining")
    later = submitting.submit(service, "test.echo", value=2)
    assert later.queued  # a draining worker gets nothing new
    gate.touch()
    done = await submitting.finished(service, run)
    assert (done.phase, done.worker, done.attempt) == (runs.Phase.SUCCEEDED, "leaving", 1)
    assert await worker.wait() == 0
    assert later.phase is runs.Phase.PENDING and later.queued  # still waiting for a worker: nothing lost


async def test_runs_a_worker_cannot_finish_in_its_drain_timeout_are_handed_back(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    (tmp_path / "markers").mkdir()
    (worker,) = await fleet.start("leaving", slots=1, args=["--drain-timeout", "0.2"])
    run = submitting.submit(service, "test.gate", markers=str(tmp_path / "markers"), gate=str(gate))
    await waiting.eventually(lambda: run.phase is runs.Phase.RUNNING, what="the run to start")

    worker.signal(signal.SIGTERM)
    assert await worker.wait() == 0
    await waiting.eventually(lambda: run.queued and run.reason == "Released", what="the run to be handed back")
    assert run.failures == 0  # a hand-back is not a failure

    await fleet.spawn("staying", slots=1)
    gate.touch()
    done = await submitting.finished(service, run)
    assert (done.phase, done.worker, done.attempt) == (runs.Phase.SUCCEEDED, "staying", 2)
