"""A routine whose failure a worker process cannot report as raised still ends its run: the run fails, once."""

from __future__ import annotations

import workpath
from tests.integration import fleets, submitting
from workpath_operator.service import runs, serving


@workpath.routine("test.negative_delay")
async def negative_delay(ctx: workpath.Context) -> None:
    raise workpath.TemporaryError("try later", delay=-1)


@workpath.routine("test.unreportable_delay")
async def unreportable_delay(ctx: workpath.Context) -> None:
    error = workpath.TemporaryError("try later", delay=1)
    error.delay = -1  # nothing checks it here: the report cannot carry it
    raise error


async def test_bad_retry_delays_fail_their_runs_instead_of_leaving_them_running(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1", modules=[__name__])
    retried = {"retries": {"limit": 3, "backoffSeconds": 0.05}}
    first, second = (
        service.dispatcher.submit(runs.RunSpec.model_validate({"routineID": routine_id, **retried}))
        for routine_id in ("test.negative_delay", "test.unreportable_delay")
    )
    for run, error_type in ((first, "ValueError"), (second, "ReportError")):
        done = await submitting.finished(service, run)
        assert done.phase is runs.Phase.FAILED and done.attempt == 1
        assert done.error is not None and (done.error.type, done.error.retryable) == (error_type, False)
