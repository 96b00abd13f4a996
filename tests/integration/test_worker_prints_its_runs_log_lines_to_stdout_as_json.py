"""A worker prints its runs' ctx.log lines to its stdout, one JSON object a line with the run ID and routine ID (for
a cluster's log collection, which keeps them after the service's in-memory window), besides sending them to the
service; its own logs stay on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys

from tests.integration import fleets, submitting
from workpath_operator.service import runs, serving


async def test_ctx_log_lines_are_json_lines_on_stdout(
    service: serving.DirectiveService, tmp_path: pathlib.Path
) -> None:
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    env = dict(os.environ, WORKPATH_TOKEN=fleets.TOKEN, PYTHONPATH=str(fleets.REPO))
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workpath", "worker", fleets.ROUTINES, "--url", service.url, "--worker-id", "w-1",
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, cwd=fleets.REPO, env=env,
        )  # fmt: skip
    try:
        run = submitting.submit(service, "test.log", lines=3)
        done = await submitting.finished(service, run)
        assert done.phase is runs.Phase.SUCCEEDED
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)

    lines = [json.loads(line) for line in stdout.read_text().splitlines()]
    assert [(line["message"], line["fields"]) for line in lines] == [("line", {"n": n}) for n in range(3)]
    for line in lines:
        assert (line["runID"], line["routineID"], line["attempt"], line["workerID"]) == (
            run.run_id,
            "test.log",
            1,
            "w-1",
        )
        assert line["level"] == "info" and line["time"]
    assert '"runID"' not in stderr.read_text()  # the worker's own log is text on stderr
    assert [entry.message for entry in service.store.logs(run.run_id)] == ["line"] * 3
