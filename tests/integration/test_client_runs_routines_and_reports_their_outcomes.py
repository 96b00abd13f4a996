"""``workpath.Client`` against a real service and a real worker process: a run's result is returned, many runs are
submitted at once, a failure is raised with the remote type and message, a timeout or a cancelled wait leaves the
run going (unless asked), a run is cancelled, read and its log lines streamed; the blocking client does the same."""

from __future__ import annotations

import asyncio

import pytest

import workpath
from tests import waiting
from tests.integration import clients, fleets
from workpath_operator.service import runs, serving


async def test_a_run_returns_its_result_and_many_runs_return_theirs_in_order(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1", slots=8)
    async with clients.connected(service) as client:
        assert await client.run("test.square", x=7) == 49
        handles = await client.submit_many(client.spec("test.square", {"x": n}) for n in range(1200))
        assert await client.results(handles) == [n * n for n in range(1200)]
        assert await asyncio.gather(*handles[:5]) == [0, 1, 4, 9, 16]
        handle = handles[3]
        status = await handle.status()
        assert (status.phase, status.result, status.routine_id) == (runs.Phase.SUCCEEDED, 9, "test.square")


async def test_a_failed_run_raises_the_remote_error_type_and_message(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1")
    async with clients.connected(service) as client:
        with pytest.raises(workpath.RunFailedError) as failed:
            await client.run("test.fail")
        assert (failed.value.type, failed.value.message) == ("ValueError", "this input can never work")
        assert failed.value.routine_id == "test.fail" and not failed.value.retryable
        handles = await client.submit_many([client.spec("test.noop"), client.spec("test.fail")])
        outcomes = await client.results(handles, return_exceptions=True)
        assert outcomes[0] is None and isinstance(outcomes[1], workpath.RunFailedError)


async def test_a_timeout_stops_the_waiting_not_the_run_unless_asked(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1")
    async with clients.connected(service) as client:
        handle = await client.submit("test.sleep", seconds=0.5)
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.05)
        waiting_task = asyncio.create_task(handle.result())
        async with asyncio.timeout(5):
            other = asyncio.create_task(handle.result())
            await asyncio.sleep(0.01)
            other.cancel()  # one waiter gives up: the other, and the run, go on
            assert await waiting_task == 0.5
        assert (await handle.status()).phase is runs.Phase.SUCCEEDED

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.run_with("test.sleep", {"seconds": 30}, cancel_on_abandon=True)
        cancelled = await waiting.eventually(
            lambda: [r for r in service.dispatcher.finished.values() if r.phase is runs.Phase.CANCELLED],
            what="the abandoned run to be cancelled",
        )
        assert cancelled[0].error is not None and "stopped waiting" in cancelled[0].error.message


async def test_a_run_is_cancelled_read_and_its_log_lines_streamed(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1")
    async with clients.connected(service) as client:
        sleeper = await client.submit("test.sleep", seconds=30)
        status = await sleeper.cancel("enough")
        assert status.phase is runs.Phase.CANCELLED
        with pytest.raises(workpath.RunCancelledError, match="enough"):
            await sleeper

        logger = await client.submit("test.log", lines=5)
        lines = [entry.fields["n"] async for entry in logger.logs(follow=True)]
        assert lines == [0, 1, 2, 3, 4]
        assert await logger == 5
        found = client.get(logger.run_id)
        assert await found.result() == 5 and (await found.status()).phase is runs.Phase.SUCCEEDED


async def test_the_blocking_client_runs_waits_and_times_out(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1")

    def script() -> tuple[object, ...]:
        with workpath.SyncClient.for_service(service.http_url, token=fleets.TOKEN) as client:
            square = client.run("test.square", x=3)
            handle = client.submit("test.sleep", seconds=0.3)
            with pytest.raises(TimeoutError):
                handle.result(timeout=0.01)
            many = [h.result() for h in client.submit_many([workpath.RunSpec(routine_id="test.noop")] * 3)]
            return (
                square,
                handle.result(),
                many,
                [e.fields["n"] for e in client.submit("test.log", lines=2).logs(follow=True)],
            )

    assert await asyncio.to_thread(script) == (9, 0.3, [None, None, None], [0, 1])
