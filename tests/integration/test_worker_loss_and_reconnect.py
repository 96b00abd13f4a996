"""The dead-worker and reconnect flows (docs/architecture.md): an unresponsive worker loses its runs; a worker
back within the grace period keeps them."""

from __future__ import annotations

import pathlib

from tests import waiting
from tests.integration import fleets, proxies, submitting
from workpath import directives
from workpath_operator.service import runs, serving


def attempts(markers: pathlib.Path, run: runs.Run) -> list[tuple[int, int]]:
    """(attempt, pid) of each time the gate routine started for ``run``."""
    found = []
    for path in markers.iterdir():
        if path.name.startswith("done."):
            continue
        run_id, attempt, pid = path.name.rsplit(".", 2)
        if run_id == run.run_id:
            found.append((int(attempt), int(pid)))
    return sorted(found)


async def test_an_unresponsive_worker_has_its_runs_requeued_as_new_attempts(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, tmp_path: pathlib.Path
) -> None:
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    (frozen,) = await fleet.start("frozen", slots=1)
    run = submitting.submit(service, "test.gate", markers=str(markers), gate=str(gate))
    await waiting.eventually(lambda: run.phase is runs.Phase.RUNNING, what="the run to start on 'frozen'")

    (spare,) = await fleet.start("spare", slots=1)
    frozen.pause()  # connected, but it answers no pulse
    await waiting.eventually(
        lambda: run.worker == "spare" and run.phase is runs.Phase.RUNNING, what="re-dispatch to 'spare'"
    )
    assert "frozen" not in service.dispatcher.sessions
    gate.touch()
    done = await submitting.finished(service, run)
    assert done.phase is runs.Phase.SUCCEEDED
    assert (done.attempt, done.worker, done.result) == (2, "spare", "opened on attempt 2")
    assert attempts(markers, run) == [(1, frozen.pid), (2, spare.pid)]

    # The frozen worker wakes up, reconnects and reports attempt 1: the report is refused and changes nothing.
    errors_before = service.directive_errors
    frozen.resume()
    await fleet.connected("frozen")
    await waiting.eventually(lambda: service.directive_errors > errors_before, what="the stale report to be refused")
    assert (run.phase, run.attempt, run.worker, run.result) == (
        runs.Phase.SUCCEEDED,
        2,
        "spare",
        "opened on attempt 2",
    )


async def test_a_worker_reconnecting_within_grace_keeps_its_runs(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, proxy: proxies.TcpProxy, tmp_path: pathlib.Path
) -> None:
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    (worker,) = await fleet.start("flaky-net", slots=2, url=proxy.url())
    batch = [submitting.submit(service, "test.gate", markers=str(markers), gate=str(gate)) for _ in range(2)]
    await waiting.eventually(lambda: all(r.phase is runs.Phase.RUNNING for r in batch), what="both runs to start")
    session = service.dispatcher.sessions[directives.WorkerID("flaky-net")]
    first_connection = session.ws

    proxy.cut()
    await waiting.eventually(
        lambda: session.ws is not None and session.ws is not first_connection, what="a new connection"
    )
    assert proxy.accepted == 2
    gate.touch()
    for run in batch:
        done = await submitting.finished(service, run)
        assert (done.phase, done.attempt, done.worker) == (runs.Phase.SUCCEEDED, 1, "flaky-net")
        assert attempts(markers, run) == [(1, worker.pid)]  # ran once: nothing ran twice


async def test_a_result_finished_while_disconnected_is_delivered_after_reconnect(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, proxy: proxies.TcpProxy, tmp_path: pathlib.Path
) -> None:
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    (worker,) = await fleet.start("offline", slots=1, url=proxy.url())
    run = submitting.submit(service, "test.gate", markers=str(markers), gate=str(gate))
    await waiting.eventually(lambda: run.phase is runs.Phase.RUNNING, what="the run to start")

    proxy.refuse()  # the service is unreachable for a while
    await waiting.eventually(
        lambda: not service.dispatcher.sessions[directives.WorkerID("offline")].connected,
        what="the disconnect to be seen",
    )
    gate.touch()  # the routine finishes while the worker cannot report it
    done_marker = markers / f"done.{run.run_id}.1"
    await waiting.eventually(done_marker.exists, what="the routine to finish on the worker")
    assert run.phase is runs.Phase.RUNNING  # the service has not heard yet, and has not given up
    proxy.accept()
    done = await submitting.finished(service, run)
    assert (done.phase, done.attempt, done.result) == (runs.Phase.SUCCEEDED, 1, "opened on attempt 1")
    assert attempts(markers, run) == [(1, worker.pid)]
