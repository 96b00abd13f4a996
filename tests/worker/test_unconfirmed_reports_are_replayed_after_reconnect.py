"""Reports stay in the replay buffer until a pulse check confirms them, and are sent again on reconnect."""

from __future__ import annotations

import asyncio

import workpath
from tests import waiting
from tests.worker import fakes
from workpath import connecting, directives, working

RunID = directives.RunID


def test_confirm_forgets_exactly_the_frames_the_service_read() -> None:
    buffer = connecting.ReplayBuffer()
    buffer.add(1, RunID("a"), 1, "starting a", final=False)
    buffer.add(2, RunID("a"), 1, "completed a", final=True)
    buffer.add(5, RunID("b"), 1, "failed b", final=True)
    assert dict(buffer.held) == {"a": 1, "b": 1}

    assert buffer.confirm(0) == 0
    assert buffer.confirm(2) == 1  # frames 0 and 1 read: 'starting a' only
    assert dict(buffer.held) == {"a": 1, "b": 1}
    assert buffer.confirm(3) == 1
    assert dict(buffer.held) == {"b": 1}
    assert buffer.confirm(3) == 0  # a repeated confirmation changes nothing
    assert buffer.confirm(100) == 1
    assert len(buffer) == 0 and not buffer.held


def test_replay_sends_everything_again_in_order_with_new_indices() -> None:
    buffer = connecting.ReplayBuffer()
    buffer.add(7, RunID("a"), 1, "starting a", final=False)
    buffer.add(8, RunID("a"), 1, "completed a", final=True)
    buffer.add(connecting.UNSENT, RunID("b"), 1, "failed b", final=True)  # produced while disconnected
    assert buffer.confirm(10_000) == 2  # an unsent frame is never confirmed
    assert dict(buffer.held) == {"b": 1}
    buffer.add(connecting.UNSENT, RunID("c"), 2, "released c", final=True)

    sent: list[str] = []

    def send(frame: str) -> int:
        sent.append(frame)
        return len(sent)  # index 0 is the Ready frame

    assert buffer.replay(send) == 2
    assert sent == ["failed b", "released c"]
    assert buffer.confirm(2) == 1
    assert dict(buffer.held) == {"c": 2}


def test_confirming_an_old_attempt_keeps_the_new_one_held() -> None:
    buffer = connecting.ReplayBuffer()
    buffer.add(1, RunID("a"), 1, "failed a#1", final=True)
    buffer.add(2, RunID("a"), 2, "completed a#2", final=True)
    buffer.confirm(2)
    assert dict(buffer.held) == {"a": 2}


@workpath.routine("unit.sleep")
async def sleep(ctx: workpath.Context, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@workpath.routine("unit.parent")
async def parent(ctx: workpath.Context) -> object:
    return await ctx.call("unit.child", n=1)


async def test_an_unconfirmed_result_is_held_and_replayed_after_reconnect() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [sleep])
        async with fakes.running(worker):
            first = await service.next_connection()
            await first.expect(directives.Ready)
            await first.send(fakes.start("unit.sleep", "run-1", seconds=0))
            await first.expect(directives.RoutineStarting)
            await first.expect(directives.RoutineCompleted)
            await first.close()  # before any pulse check confirmed it

            second = await service.next_connection()
            ready = await second.expect(directives.Ready)
            assert ready.running == [directives.HeldRun(run_id=RunID("run-1"), attempt=1)]
            assert (await second.expect(directives.RoutineStarting)).run_id == "run-1"
            completed = await second.expect(directives.RoutineCompleted)
            assert (completed.run_id, completed.result) == ("run-1", 0)
            await second.pulse()  # confirms everything read so far
            assert not worker.replay_buffer.held and len(worker.replay_buffer) == 0
            await second.close()

            third = await service.next_connection()
            assert (await third.expect(directives.Ready)).running == []
            await third.pulse()
            assert third.frames.empty()


async def test_a_result_finished_while_disconnected_is_sent_after_reconnect() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [sleep])
        async with fakes.running(worker):
            first = await service.next_connection()
            await first.expect(directives.Ready)
            await first.send(fakes.start("unit.sleep", "run-1", seconds=0.2))
            await first.expect(directives.RoutineStarting)
            await first.pulse()
            service.refuse_with = 503
            await first.close()
            await waiting.eventually(lambda: not worker.running, what="the run to finish while disconnected")
            await waiting.eventually(lambda: service.attempts >= 3, what="a few refused reconnects")
            service.refuse_with = None

            second = await service.next_connection()
            ready = await second.expect(directives.Ready)
            assert ready.running == [directives.HeldRun(run_id=RunID("run-1"), attempt=1)]
            completed = await second.expect(directives.RoutineCompleted)  # its 'starting' was confirmed
            assert completed.result == 0.2


async def test_a_running_job_is_listed_in_ready_after_reconnect() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [sleep])
        async with fakes.running(worker):
            first = await service.next_connection()
            await first.expect(directives.Ready)
            await first.send(fakes.start("unit.sleep", "run-1", attempt=3, seconds=30))
            await first.expect(directives.RoutineStarting)
            await first.pulse()
            await first.close()

            second = await service.next_connection()
            ready = await second.expect(directives.Ready)
            assert ready.running == [directives.HeldRun(run_id=RunID("run-1"), attempt=3)]
            pulse = await second.pulse()
            assert (pulse.status, pulse.running) == ("busy", ["run-1"])


async def test_an_unanswered_subroutine_request_is_sent_again_after_reconnect() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service), [parent])
        async with fakes.running(worker):
            first = await service.next_connection()
            await first.expect(directives.Ready)
            await first.send(fakes.start("unit.parent", "run-1"))
            request = await first.expect(directives.RequestSubroutine, skip=(directives.RoutineStarting,))
            await first.pulse()
            await first.close()

            second = await service.next_connection()
            await second.expect(directives.Ready)
            again = await second.expect(directives.RequestSubroutine)
            assert again == request
            await second.send(
                directives.RoutineCompleted(
                    run_id=RunID("child-1"),
                    request_id=request.request_id,
                    result="from the child",
                    completed_at=directives.now(),
                )
            )
            completed = await second.expect(directives.RoutineCompleted)
            assert (completed.run_id, completed.result) == ("run-1", "from the child")
