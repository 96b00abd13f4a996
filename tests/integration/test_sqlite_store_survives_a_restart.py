"""Local mode with --db: runs outlive the service; pending ones are dispatched after a restart."""

from __future__ import annotations

import pathlib

from tests.integration import fleets, submitting
from workpath_operator.service import authenticating, runs, serving, settings, stores


def sqlite_service(service_settings: settings.ServiceSettings, db: pathlib.Path) -> serving.DirectiveService:
    return serving.DirectiveService(
        settings=service_settings,
        store=stores.SqliteRunStore(str(db)),
        authenticator=authenticating.SharedTokenAuthenticator(fleets.TOKEN),
    )


async def test_finished_and_pending_runs_survive_a_service_restart(
    service_settings: settings.ServiceSettings, tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "runs.sqlite"
    service_settings = service_settings.replace(settle_seconds=0.1)
    async with sqlite_service(service_settings, db) as first:
        fleet = fleets.WorkerFleet(first, logs=tmp_path)
        try:
            await fleet.start("w-1")
            done = await submitting.finished(first, submitting.submit(first, "test.echo", value="kept"))
        finally:
            await fleet.close()
        queued = submitting.submit(first, "test.echo", value="later")  # no worker now: it stays queued

    async with sqlite_service(service_settings, db) as second:
        again = second.store.get(done.run_id)
        assert again is not None
        assert again.status() == done.status()
        restored = second.dispatcher.get(queued.run_id)
        assert restored is not None and restored.phase is runs.Phase.PENDING
        fleet = fleets.WorkerFleet(second, logs=tmp_path)
        try:
            await fleet.spawn("w-2")
            later = await submitting.finished(second, restored)
        finally:
            await fleet.close()
        assert (later.phase, later.result["value"], later.worker) == (runs.Phase.SUCCEEDED, "later", "w-2")
