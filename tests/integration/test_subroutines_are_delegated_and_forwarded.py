"""The sub-routine flow (docs/architecture.md): sub-routines requested by a running routine are delegated and
their results forwarded."""

from __future__ import annotations

import pathlib

from tests import waiting
from tests.integration import fleets, submitting
from workpath_operator.service import runs, serving


async def test_fan_out_results_come_back_to_the_requesting_routine(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1", "w-2", slots=2)
    parent = submitting.submit(service, "test.fanout", n=6)
    done = await submitting.finished(service, parent)
    assert done.phase is runs.Phase.SUCCEEDED, done.error
    assert done.result == {"squares": [0, 1, 4, 9, 16, 25], "sum": 55}
    assert (done.children_total, done.children_succeeded, done.children_failed) == (6, 6, 0)
    assert done.children is not None
    children = list(done.children.values())
    assert all(c.parent_run_id == parent.run_id and c.phase is runs.Phase.SUCCEEDED for c in children)
    assert {c.worker for c in children} == {"w-1", "w-2"}  # delegated to other workers too


async def test_a_three_deep_chain_runs_on_a_single_slot(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("solo", slots=1)
    top = submitting.submit(service, "test.chain", depth=3)
    done = await submitting.finished(service, top, timeout=20)
    assert done.phase is runs.Phase.SUCCEEDED, done.error
    chain = done.result
    assert isinstance(chain, list) and len(chain) == 3 and chain[0] == top.run_id
    child = service.dispatcher.get(chain[1])
    grandchild = service.dispatcher.get(chain[2])
    assert child is not None and grandchild is not None
    assert child.parent_run_id == top.run_id and grandchild.parent_run_id == child.run_id
    assert grandchild.root_run_id == top.run_id
    assert {top.worker, child.worker, grandchild.worker} == {"solo"}


async def test_a_sub_routine_nobody_waits_for_any_more_is_cancelled(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, tmp_path: pathlib.Path
) -> None:
    await fleet.start("w-1", slots=4)
    markers = tmp_path / "markers"
    markers.mkdir()
    parent = submitting.submit(
        service, "test.abandon", markers=str(markers), gate=str(tmp_path / "never"), release=str(tmp_path / "go")
    )
    await waiting.eventually(
        lambda: parent.children_total == 2 and parent.children_failed == 2, what="both children to end"
    )
    assert parent.phase is runs.Phase.RUNNING  # the parent still runs: the cancel came from ctx.gather, not from it
    assert parent.children is not None
    gated = next(c for c in parent.children.values() if c.routine_id == "test.gate")
    assert gated.phase is runs.Phase.CANCELLED
    (tmp_path / "go").touch()
    done = await submitting.finished(service, parent)
    assert (done.phase, done.result) == (runs.Phase.SUCCEEDED, "released")


async def test_a_failed_sub_routine_raises_in_the_parent(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1", slots=2)
    done = await submitting.finished(service, submitting.submit(service, "test.fanout", n=-1))
    assert done.phase is runs.Phase.SUCCEEDED  # n=-1: no children, sanity check of the routine
    done = await submitting.finished(service, submitting.submit(service, "test.call_failing"))
    assert done.phase is runs.Phase.FAILED
    assert done.error is not None
    assert done.error.type == "RoutineFailedError"
    assert "this input can never work" in done.error.message
