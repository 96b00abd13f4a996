"""Local mode keeps the last ``finished_runs_kept`` finished runs, and their log lines, in memory: the oldest are
forgotten first, so a long ``workpath dev`` session holds a bounded number of runs (and the garbage collector has
a bounded heap to walk), however many it ran."""

from __future__ import annotations

import pathlib

from workpath import directives
from workpath_operator.local import developing
from workpath_operator.service import runs, stores

KEPT = 3


def finished_run(n: int, store: stores.RunStore) -> runs.Run:
    """A run that logged a line and succeeded, as the dispatcher tells the store."""
    run = runs.Run(
        run_id=runs.new_run_id(),
        spec=runs.RunSpec(routine_id=directives.RoutineID("test.noop")),
        created_at=directives.now(),
    )
    store.run_changed(run)
    store.run_log(run, directives.Log(run_id=run.run_id, message=f"line of run {n}", time=directives.now()))
    run.phase = runs.Phase.SUCCEEDED
    run.completed_at = directives.now()
    store.run_changed(run)
    return run


def test_the_oldest_finished_runs_and_their_logs_are_forgotten_past_the_setting() -> None:
    store = developing.run_store(developing.LocalSettings(finished_runs_kept=KEPT))
    done = [finished_run(n, store) for n in range(KEPT + 2)]
    forgotten, kept = done[:2], done[2:]
    assert [store.get(run.run_id) for run in forgotten] == [None, None]
    assert [store.logs(run.run_id) for run in forgotten] == [[], []]
    assert [store.get(run.run_id) for run in kept] == kept
    assert [[entry.message for entry in store.logs(run.run_id)] for run in kept] == [
        [f"line of run {n}"] for n in range(2, KEPT + 2)
    ]


def test_with_a_database_the_memory_keeps_as_many(tmp_path: pathlib.Path) -> None:
    store = developing.run_store(developing.LocalSettings(finished_runs_kept=KEPT, db=str(tmp_path / "runs.db")))
    assert isinstance(store, stores.SqliteRunStore)
    done = [finished_run(n, store) for n in range(KEPT + 1)]
    assert store.get(done[0].run_id) is None
    assert [store.get(run.run_id) for run in done[1:]] == done[1:]
