"""``ctx.call`` sends a request; the service's forwarded reports (tagged with its requestID) answer it."""

from __future__ import annotations

from typing import Any

import workpath
from tests.worker import fakes
from workpath import directives, working

RunID = directives.RunID
children: list[tuple[str | None, str | None]] = []


@workpath.routine("unit.parent")
async def parent(ctx: workpath.Context) -> Any:
    result = await ctx.call_with("unit.child", {"n": 1}, timeout_seconds=9.0, pool="big")
    children.extend((call.run_id, call.worker_id) for call in ctx.subroutines)
    return result


@workpath.routine("unit.fanout")
async def fanout(ctx: workpath.Context, n: int) -> list[Any]:
    return await ctx.gather(*(ctx.call("unit.child", i=i) for i in range(n)))


@workpath.routine("unit.sync_parent")
def sync_parent(ctx: workpath.Context) -> Any:
    return ctx.call_sync("unit.child", n=2)


@workpath.routine("unit.guarded")
async def guarded(ctx: workpath.Context) -> str:
    try:
        await ctx.call("unit.child")
    except workpath.RoutineFailedError as exc:
        return f"{exc.type}: {exc.message} (retryable={exc.retryable})"
    return "no failure"


def forwarded_completed(request: directives.RequestSubroutine, result: Any, run: str = "child-1") -> Any:
    return directives.RoutineCompleted(
        run_id=RunID(run), request_id=request.request_id, result=result, completed_at=directives.now()
    )


async def test_the_result_of_a_subroutine_returns_from_call() -> None:
    children.clear()
    async with fakes.fake_service() as service, fakes.running(working.Worker(fakes.worker_settings(service), [parent])):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.parent", "run-1"))
        request = await connection.expect(directives.RequestSubroutine, skip=(directives.RoutineStarting,))
        assert (request.routine_id, request.params, request.parent_run_id) == ("unit.child", {"n": 1}, "run-1")
        assert (request.timeout_seconds, request.pool) == (9.0, "big")
        unknown = request.model_copy(update={"request_id": directives.RequestID("someone-else")})
        await connection.send(forwarded_completed(unknown, "not for us"))
        await connection.send(
            directives.RoutineStarting(
                run_id=RunID("child-1"),
                request_id=request.request_id,
                worker_id=directives.WorkerID("other-worker"),
                started_at=directives.now(),
            )
        )
        await connection.send(forwarded_completed(request, {"rows": 3}))
        await connection.send(forwarded_completed(request, {"rows": 999}))  # a duplicate: ignored
        completed = await connection.expect(directives.RoutineCompleted)
        assert (completed.run_id, completed.result) == ("run-1", {"rows": 3})
        await connection.pulse()
        assert connection.frames.empty()
    assert children == [("child-1", "other-worker")]


async def test_a_fan_out_gets_every_result_in_order() -> None:
    async with fakes.fake_service() as service, fakes.running(working.Worker(fakes.worker_settings(service), [fanout])):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.fanout", "run-1", n=4))
        await connection.expect(directives.RoutineStarting)
        requests = [await connection.expect(directives.RequestSubroutine) for _ in range(4)]
        assert len({r.request_id for r in requests}) == 4
        for request in reversed(requests):
            await connection.send(forwarded_completed(request, request.params["i"] * 10))
        completed = await connection.expect(directives.RoutineCompleted)
        assert completed.result == [0, 10, 20, 30]


async def test_a_failed_subroutine_raises_in_the_caller() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), [guarded])),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.guarded", "run-1"))
        request = await connection.expect(directives.RequestSubroutine, skip=(directives.RoutineStarting,))
        await connection.send(
            directives.RoutineFailed(
                run_id=RunID("child-1"),
                request_id=request.request_id,
                error=directives.ErrorInfo(type="ValueError", message="bad n", retryable=True),
                completed_at=directives.now(),
            )
        )
        completed = await connection.expect(directives.RoutineCompleted)
        assert completed.result == "ValueError: bad n (retryable=True)"


async def test_a_sync_routine_calls_subroutines_from_its_thread() -> None:
    async with (
        fakes.fake_service() as service,
        fakes.running(working.Worker(fakes.worker_settings(service), [sync_parent])),
    ):
        connection = await service.next_connection()
        await connection.expect(directives.Ready)
        await connection.send(fakes.start("unit.sync_parent", "run-1"))
        request = await connection.expect(directives.RequestSubroutine, skip=(directives.RoutineStarting,))
        await connection.send(forwarded_completed(request, "from the child"))
        completed = await connection.expect(directives.RoutineCompleted)
        assert completed.result == "from the child"


async def test_cancelling_the_parent_abandons_its_pending_calls() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [fanout])
        async with fakes.running(worker):
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
            await connection.send(fakes.start("unit.fanout", "run-1", n=2))
            await connection.expect(directives.RoutineStarting)
            requests = [await connection.expect(directives.RequestSubroutine) for _ in range(2)]
            await connection.send(directives.CancelRoutine(run_id=RunID("run-1"), reason="parent deleted"))
            cancels = [await connection.expect(directives.CancelSubroutine) for _ in range(2)]
            assert {c.request_id for c in cancels} == {r.request_id for r in requests}
            failed = await connection.expect(directives.RoutineFailed)
            assert failed.error.type == "Cancelled"
            await connection.send(forwarded_completed(requests[0], "late"))  # ignored
            await connection.close()
            second = await service.next_connection()
            await second.expect(directives.Ready)
            await second.expect(directives.RoutineStarting)  # the unconfirmed reports come back...
            await second.expect(directives.RoutineFailed)
            await second.pulse()
            assert second.frames.empty()  # ...but not the abandoned requests
