"""kill -9 of a local worker with 1,000 runs in flight: local mode sees its process exit and loses it at once (not
after the reconnect grace period), so every one of its runs is dispatched again to the other worker at once; none is
lost, none completes twice."""

from __future__ import annotations

import asyncio
import collections
import pathlib
import signal

import pytest

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives
from workpath_operator.local import developing
from workpath_operator.service import runs, serving, settings

IN_FLIGHT = 1000
HOLD_SECONDS = 4.0


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    """A heartbeat that a busy 2-core machine starting 2,000 runs cannot miss: only the process exit loses dev-1."""
    return service_settings.replace(heartbeat_interval=1.0, heartbeat_misses=10)


async def test_kill_9_loses_no_run_and_runs_none_twice(
    service: serving.DirectiveService, tmp_path: pathlib.Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    settings = developing.LocalSettings(workers=2, slots=2 * IN_FLIGHT, token=fleets.TOKEN)
    workers = developing.LocalWorkers(
        [fleets.ROUTINES],
        settings=settings,
        url=service.url,
        token=fleets.TOKEN,
        on_exit=developing.lost(service.dispatcher),
    )
    await workers.start()
    try:
        await developing.wait_for_workers(service, 2, within=30)
        batch = [
            submitting.submit(service, "test.hold", markers=str(markers), seconds=HOLD_SECONDS)
            for _ in range(2 * IN_FLIGHT)
        ]
        await waiting.eventually(
            lambda: all(run.phase is runs.Phase.RUNNING for run in batch), timeout=90, what="every run to start"
        )
        doomed = service.dispatcher.sessions[directives.WorkerID("dev-1")]
        lost = list(doomed.runs.values())
        assert len(lost) == IN_FLIGHT

        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        workers.processes["dev-1"].send_signal(signal.SIGKILL)
        await waiting.eventually(
            lambda: all(run.attempt == 2 and run.worker == "dev-2" for run in lost),
            what="every run of the killed worker to be dispatched again",
        )
        redispatched = loop.time() - killed_at
        await waiting.eventually(
            lambda: all(run.attempt == 2 and run.phase is runs.Phase.RUNNING for run in lost),
            what="every run of the killed worker to start again",
        )
        restarted = loop.time() - killed_at
        print(
            f"\nkill -9 with {len(lost)} runs in flight: all dispatched again in {redispatched * 1000:.0f} ms, "
            f"all running again in {restarted * 1000:.0f} ms"
        )
        assert redispatched < 2.0
        assert {run.reason for run in lost} <= {runs.Reason.DISPATCHED, runs.Reason.STARTED}

        done = await asyncio.wait_for(asyncio.gather(*(service.dispatcher.wait_finished(r) for r in batch)), 90)
    finally:
        await workers.stop()

    assert collections.Counter(run.phase for run in done) == {runs.Phase.SUCCEEDED: 2 * IN_FLIGHT}
    completions = collections.Counter(path.name.split(".")[1] for path in markers.glob("done.*"))
    assert len(completions) == 2 * IN_FLIGHT and set(completions.values()) == {1}  # 0 lost, 0 twice
    for run in lost:
        assert run.result == 2
        assert not (markers / f"done.{run.run_id}.1").exists()
