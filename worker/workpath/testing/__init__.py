"""Unit-test routines with no service and no worker: :class:`RoutineEnvironment`.

The environment runs a routine as a worker would: params checked by name, plain
``def`` routines in a thread, the result sent as JSON, a failure turned into the
``type``, ``message`` and ``retryable`` that cross the wire. It also plays the
service around it: the sub-routines the routine calls are answered by stubs the
test gives or run in-process (recursively), its ``ctx.log`` lines are captured,
and the test can cancel it or give it a deadline. It is plain asyncio::

    import pytest

    import workpath
    from workpath import testing

    from examples import reports


    async def test_a_report_adds_up_its_parts() -> None:
        env = testing.RoutineEnvironment([reports], stubs={"reports.part": {"rows": 10}})
        assert await env.run(reports.build, month="2026-10") == {"month": "2026-10", "parts": 4, "rows": 40}
        assert [request.params["n"] for request in env.requests] == [0, 1, 2, 3]


    async def test_a_failed_part_fails_the_report() -> None:
        env = testing.RoutineEnvironment([reports], stubs={"reports.part": workpath.PermanentError("no data")})
        with pytest.raises(testing.RunFailedError, match="PermanentError: no data") as failed:
            await env.run(reports.build, month="2026-10", parts=1)
        assert failed.value.type == "RoutineFailedError" and not failed.value.retryable


    def test_a_part_runs_in_a_plain_test() -> None:
        env = testing.RoutineEnvironment([reports])
        assert env.run_sync(reports.part, month="2026-10", n=0)["n"] == 0

``env.run(...)`` returns the result or raises :class:`RunFailedError`;
``env.start(...)`` returns a :class:`RunHandle` to cancel the run, look at its
log lines and sub-routine requests while it goes, and wait for its
:class:`Outcome`.

Each run is one attempt: nothing is retried, pools are not modelled, and an
unknown routine ID fails at once, as on a worker asked to run it (a real
service keeps such a run queued until a worker that has it connects, or its
queue timeout).
"""

from __future__ import annotations

from workpath.testing import environments, runs

RoutineEnvironment = environments.RoutineEnvironment
RunHandle = runs.RunHandle
Outcome = runs.Outcome
RunFailedError = runs.RunFailedError
LogLine = runs.LogLine
SubroutineRequest = runs.SubroutineRequest

__all__ = ["LogLine", "Outcome", "RoutineEnvironment", "RunFailedError", "RunHandle", "SubroutineRequest"]
