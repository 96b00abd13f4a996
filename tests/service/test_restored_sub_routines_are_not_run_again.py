"""After a restart, sub-routines are linked to their waiting parent again, finished ones too: the parent's worker
gets the result of a child that finished while no service ran, and its replayed request does not start it again."""

from __future__ import annotations

from tests.service import fakes
from workpath import directives
from workpath_operator.service import dispatching, runs


def run(phase: runs.Phase, **fields: object) -> runs.Run:
    return runs.Run(
        run_id=runs.new_run_id(),
        spec=runs.RunSpec.model_validate({"routineID": "reports.part"}),
        created_at=directives.now(),
        phase=phase,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_child_finished_before_the_restart_is_answered_not_run_again(
    dispatcher: dispatching.Dispatcher, workers: fakes.FakeWorkers
) -> None:
    parent = run(runs.Phase.RUNNING, worker=directives.WorkerID("w"), attempt=1)
    request = directives.RequestID("req-1")
    child = run(
        runs.Phase.SUCCEEDED,
        worker=directives.WorkerID("w"),
        attempt=1,
        parent_run_id=parent.run_id,
        request_id=request,
        parent_attempt=1,
        result={"rows": 7},
        completed_at=directives.now(),
    )
    dispatcher.restore([parent, child])
    worker = workers.attach("w", slots=2, running=[(parent, 1)])

    (answer,) = await workers.sent(worker)
    assert isinstance(answer, directives.RoutineCompleted)
    assert (answer.request_id, answer.result) == (request, {"rows": 7})

    replay = directives.RequestSubroutine(
        request_id=request, routine_id=directives.RoutineID("reports.part"), parent_run_id=parent.run_id
    )
    dispatcher.subroutines.request(worker, replay)
    frames = await workers.sent(worker)
    assert not [f for f in frames if isinstance(f, directives.StartRoutine)]
    assert [type(f) for f in frames] == [directives.RoutineCompleted]
    assert parent.waiting == 0


async def test_children_of_an_abandoned_attempt_are_not_linked(dispatcher: dispatching.Dispatcher) -> None:
    parent = run(runs.Phase.RUNNING, worker=directives.WorkerID("w"), attempt=2)
    stale = run(
        runs.Phase.RUNNING,
        worker=directives.WorkerID("w"),
        attempt=1,
        parent_run_id=parent.run_id,
        request_id=directives.RequestID("old"),
        parent_attempt=1,
    )
    dispatcher.restore([parent, stale])
    assert parent.children is None
    assert parent.waiting == 0
