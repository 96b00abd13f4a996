"""Workers with the same pool and routine patterns form one group; which groups may run a routine is decided by
pool and pattern, and a new kind of worker takes the runs queued before it came."""

from __future__ import annotations

from workpath import directives
from workpath_operator.service import matching, runs


def run(routine: str, *, pool: str | None = None) -> runs.Run:
    spec = runs.RunSpec.model_validate({"routineID": routine, "pool": pool})
    return runs.Run(run_id=runs.new_run_id(), spec=spec, created_at=directives.now())


def test_pools_and_patterns_decide_who_is_offered_a_run() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("reports", pool="default", patterns=frozenset({"reports.*"}), available=True)
    matcher.join("gpu", pool="gpu", patterns=frozenset({"*"}), available=True)
    assert matcher.idle_worker(run("reports.build", pool="default")) == "reports"
    assert matcher.idle_worker(run("reports.build", pool="gpu")) == "gpu"
    assert matcher.idle_worker(run("mail.send", pool="default")) is None
    assert matcher.idle_worker(run("mail.send")) == "gpu"  # a run that names no pool may run in any


def test_a_new_kind_of_worker_takes_runs_queued_before_it_came() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("reports", pool="default", patterns=frozenset({"reports.*"}), available=False)
    mail = run("mail.send")
    assert matcher.idle_worker(mail) is None
    matcher.queue(mail)
    matcher.join("mailer", pool="default", patterns=frozenset({"mail.*"}), available=True)
    assert matcher.next_run("mailer") is mail
    assert matcher.next_run("reports") is None


def test_capable_workers_are_counted_across_groups_while_they_are_members() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("a1", pool="default", patterns=frozenset({"a.*"}), available=True)
    matcher.join("a2", pool="default", patterns=frozenset({"a.*"}), available=False)
    matcher.join("any", pool="default", patterns=frozenset({"*"}), available=True)
    matcher.join("gpu", pool="gpu", patterns=frozenset({"*"}), available=True)
    assert matcher.capable(run("a.b", pool="default")) == 3
    assert matcher.capable(run("a.b", pool="gpu")) == 1
    assert matcher.capable(run("a.b")) == 4
    matcher.leave("a1")
    matcher.leave("any")
    assert matcher.capable(run("a.b", pool="default")) == 1
    assert matcher.idle_worker(run("a.b", pool="default")) is None  # a2 is a member, but has no free slot


def test_a_worker_that_leaves_is_offered_nothing() -> None:
    matcher: matching.Matcher[str] = matching.Matcher()
    matcher.join("w", pool="default", patterns=frozenset({"*"}), available=True)
    matcher.leave("w")
    matcher.mark_available("w")  # a late notice about a worker that is gone changes nothing
    assert matcher.idle_worker(run("a.b")) is None
    assert matcher.next_run("w") is None
