"""The matcher hands a run to an idle worker that can take it, round robin; otherwise queues it, and a worker's
group gives it its queued runs by priority, then arrival. Workers are plain keys here: the matcher needs no more."""

from __future__ import annotations

from workpath import directives
from workpath_operator.service import matching, runs

ALL = frozenset({"*"})


def run(routine: str = "a.b", *, priority: int = 0, pool: str | None = None) -> runs.Run:
    spec = runs.RunSpec.model_validate({"routineID": routine, "priority": priority, "pool": pool})
    return runs.Run(run_id=runs.new_run_id(), spec=spec, created_at=directives.now())


def drain(matcher: matching.Matcher[str], worker: str) -> list[runs.Run]:
    taken = []
    while (next_run := matcher.next_run(worker)) is not None:
        matcher.withdraw(next_run)
        taken.append(next_run)
    return taken


def test_queued_runs_come_by_priority_then_arrival() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("w", pool="default", patterns=ALL, available=False)
    low1, high, low2 = run(priority=0), run(priority=5), run(priority=0)
    for each in (low1, high, low2):
        matcher.queue(each)
    assert list(matcher.queued) == [low1.run_id, high.run_id, low2.run_id]
    assert drain(matcher, "w") == [high, low1, low2]
    assert not matcher.queued


def test_an_idle_worker_is_offered_first_and_idle_workers_take_turns() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    for worker in ("w1", "w2", "w3"):
        matcher.join(worker, pool="default", patterns=ALL, available=True)
    chosen = []
    for _ in range(4):
        offered = matcher.idle_worker(run())
        assert offered is not None
        chosen.append(offered)
        matcher.assigned(offered, full=False)
    assert chosen == ["w1", "w2", "w3", "w1"]


def test_a_full_or_unavailable_worker_is_not_offered() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("w1", pool="default", patterns=ALL, available=True)
    matcher.join("w2", pool="default", patterns=ALL, available=True)
    matcher.assigned("w1", full=True)
    matcher.mark_unavailable("w2")
    assert matcher.idle_worker(run()) is None
    matcher.mark_available("w2")
    assert matcher.idle_worker(run()) == "w2"


def test_a_run_queued_in_several_groups_is_taken_once() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("any", pool="default", patterns=ALL, available=False)
    matcher.join("reports", pool="default", patterns=frozenset({"reports.*"}), available=False)
    shared = run("reports.build")
    matcher.queue(shared)
    assert drain(matcher, "reports") == [shared]
    assert drain(matcher, "any") == []  # its entry in the other heap is skipped (lazy deletion)


def test_a_withdrawn_run_is_skipped_and_a_requeued_one_counts_once() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("w", pool="default", patterns=ALL, available=False)
    first, second = run(), run()
    matcher.queue(first)
    matcher.queue(second)
    matcher.withdraw(first)  # finished, adopted or cancelled meanwhile
    matcher.withdraw(second)
    matcher.queue(second)  # queued again: a new arrival, its old entry is stale
    assert drain(matcher, "w") == [second]
