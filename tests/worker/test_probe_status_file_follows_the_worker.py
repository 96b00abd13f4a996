"""A worker with a status file records there each change of state (connecting, reconnecting with the reason,
connected, draining, stopped) and refreshes it from its event loop, never per directive: what `workpath probe`
reads. A stuck event loop leaves the file stale; a write that fails is logged and the worker goes on."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time

import pytest

import workpath
from tests import waiting
from tests.worker import fakes
from workpath import directives, probing, working


@workpath.routine("unit.echo")
async def echo(ctx: workpath.Context, text: str) -> str:
    return text


@workpath.routine("unit.sleep")
async def sleep(ctx: workpath.Context, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


def state(path: pathlib.Path) -> probing.State | None:
    """The state in the file, or None while there is no file."""
    return probing.read(path).state if path.exists() else None


async def test_the_file_follows_connecting_reconnecting_connected_draining_and_stopped(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "workpath" / "status"
    async with fakes.fake_service() as service:
        service.refuse_with = 503
        worker = working.Worker(fakes.worker_settings(service, status_file=path), [echo])
        async with fakes.running(worker) as task:
            await waiting.eventually(lambda: state(path) == "reconnecting", what="a refused connect recorded")
            status = probing.read(path)
            assert f"cannot connect to {service.url}" in status.detail
            assert "503" in status.detail
            assert (status.worker_id, status.interval) == ("unit-worker", 5.0)
            assert probing.probe("live", path)[0] is True  # reconnecting with backoff is alive
            passed, reason = probing.probe("ready", path)
            assert not passed
            # The state in words ends with how long it has lasted, which moves between two readings.
            expected = status.describe().rpartition(" for ")[0]
            assert reason.startswith(f"not ready: worker unit-worker (pid {status.pid}) is {expected} for ")

            service.refuse_with = None
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await waiting.eventually(lambda: state(path) == "connected", what="the connection recorded")
            assert probing.read(path).detail == service.url
            passed, reason = probing.probe("ready", path)
            assert passed, reason
            assert reason.startswith(f"ready: worker unit-worker (pid {probing.read(path).pid}) is connected (")

            # Refused while it reconnects, so that "reconnecting" lasts until the test has seen it.
            service.refuse_with = 503
            await connection.close()
            await waiting.eventually(lambda: state(path) == "reconnecting", what="the lost connection recorded")
            detail = probing.read(path).detail
            assert f"lost the connection to {service.url}" in detail or f"cannot connect to {service.url}" in detail
            service.refuse_with = None
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await waiting.eventually(lambda: state(path) == "connected", what="the reconnection recorded")

            await connection.send(fakes.start("unit.echo", text="hi"))
            await connection.expect(directives.RoutineCompleted, skip=(directives.RoutineStarting,))
            worker.drain()  # it waits for the service to confirm the report
            await waiting.eventually(lambda: state(path) == "draining", what="the drain recorded")
            assert probing.probe("live", path)[0] is True
            assert probing.probe("ready", path)[1].startswith("not ready: worker unit-worker")
            await connection.pulse()
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0

    status = probing.read(path)
    assert (status.state, status.detail) == ("stopped", "drained")
    assert probing.probe("live", path)[0] is False


async def test_a_draining_worker_stays_draining_when_it_reconnects(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "status"
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, status_file=path, drain_timeout=30), [sleep])
        async with fakes.running(worker):
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.sleep", seconds=30))
            await connection.expect(directives.RoutineStarting)
            worker.drain()  # it waits for the running job
            await waiting.eventually(lambda: state(path) == "draining", what="the drain recorded")
            await connection.close()
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            assert state(path) == "draining"
            assert probing.read(path).detail == service.url


async def test_the_file_is_refreshed_while_the_loop_runs_and_goes_stale_when_it_is_stuck(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "status"
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, status_file=path, status_interval=0.05), [echo])
        async with fakes.running(worker):
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await waiting.eventually(lambda: state(path) == "connected", what="the connection recorded")
            first = probing.read(path)
            await waiting.eventually(lambda: probing.read(path).clock > first.clock, what="a refresh")
            assert probing.read(path).since == first.since  # the same state, refreshed

            time.sleep(0.3)  # the subject: an event loop that does not run (0.3 s > 3 intervals of 0.05 s)
            passed, reason = probing.probe("live", path)
            assert not passed
            assert f"last refreshed {path}" in reason
            assert "over 0.15s: its event loop is stuck (it was connected (" in reason  # 3 x 0.05 s
            assert not probing.probe("ready", path)[0]  # a stuck worker is not ready either

            await waiting.eventually(lambda: probing.probe("live", path)[0], what="liveness back once the loop runs")
            worker.drain()


async def test_directives_do_not_write_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "status"
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, status_file=path, status_interval=3600), [echo])
        async with fakes.running(worker):
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await waiting.eventually(lambda: state(path) == "connected", what="the connection recorded")
            written = path.stat().st_ino  # every write renames a new file into place
            for number in range(20):
                await connection.send(fakes.start("unit.echo", f"run-{number}", text="hi"))
                await connection.expect(directives.RoutineCompleted, skip=(directives.RoutineStarting,))
                await connection.pulse()
            assert path.stat().st_ino == written
            worker.drain()


async def test_a_file_that_cannot_be_written_is_logged_once_and_the_worker_goes_on(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = blocker / "status"
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, status_file=path), [echo])
        async with fakes.running(worker) as task:
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.echo", text="still works"))
            completed = await connection.expect(directives.RoutineCompleted, skip=(directives.RoutineStarting,))
            assert completed.result == "still works"
            worker.drain()  # writes of connecting, connected, draining and stopped fail alike
            await connection.pulse()
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 0

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "status file" in r.message]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot write the status file {path}: ")
    assert warnings[0].endswith("; probes of this worker will fail")
    assert probing.probe("live", path)[1].startswith(f"not live: cannot read the status file {path}: ")
