"""The dispatcher hands queued runs to free slots: by priority then arrival, never more than a worker's slots, to
workers whose routine patterns and pool match; a parent waiting on its child lends it its only slot."""

from __future__ import annotations

from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching


async def test_queued_runs_go_by_priority_then_arrival(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    low1 = dispatcher.submit(fakes.spec(priority=0))
    high = dispatcher.submit(fakes.spec(priority=5))
    low2 = dispatcher.submit(fakes.spec(priority=0))
    worker = workers.attach("w", slots=1)
    order = []
    for _ in range(3):
        (start,) = await workers.starts(worker)
        order.append(start.run_id)
        workers.complete(worker, start)
    assert order == [high.run_id, low1.run_id, low2.run_id]


async def test_a_worker_gets_no_more_runs_than_slots(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w", slots=2)
    for _ in range(3):
        dispatcher.submit(fakes.spec())
    assert len(await workers.starts(worker)) == 2
    assert dispatcher.queue_depth() == 1


async def test_routine_patterns_and_pools_decide_who_runs_what(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    reports = workers.attach("reports", slots=5, routines=("reports.*",))
    gpu = workers.attach("gpu", slots=5, routines=("*",), pool="gpu")
    build = dispatcher.submit(fakes.spec("reports.build", pool="default"))
    train = dispatcher.submit(fakes.spec("model.train", pool="gpu"))
    mail = dispatcher.submit(fakes.spec("mail.send", pool="default"))
    assert [s.run_id for s in await workers.starts(reports)] == [build.run_id]
    assert [s.run_id for s in await workers.starts(gpu)] == [train.run_id]
    assert mail.queued and dispatcher.queue_depth() == 1
    # a worker that can run it arrives later and takes it from the queue
    mailer = workers.attach("mailer", slots=1, routines=("mail.send",))
    assert [s.run_id for s in await workers.starts(mailer)] == [mail.run_id]


async def test_a_parent_waiting_on_a_child_lends_its_only_slot(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    worker = workers.attach("w", slots=1)
    parent = dispatcher.submit(fakes.spec("chain"))
    (start,) = await workers.starts(worker)
    dispatcher.subroutines.request(
        worker,
        directives.RequestSubroutine(
            request_id=directives.RequestID("q1"), routine_id=directives.RoutineID("leaf"), parent_run_id=start.run_id
        ),
    )
    (child_start,) = await workers.starts(worker)
    assert child_start.parent_run_id == parent.run_id
    workers.complete(worker, child_start)
    forwarded = await workers.sent(worker)
    assert any(isinstance(p, directives.RoutineCompleted) and p.request_id == "q1" for p in forwarded)
    assert parent.holds_slot and worker.busy == 1
    assert parent.children_total == 1 and parent.children_succeeded == 1
