"""The kubectl-like commands against a real local service with a real worker: ``workpath run`` shows a fan-out's
children done of total, ``get`` lists runs (a table with its columns, ``-o json``, ``--watch`` until Ctrl-C),
``describe`` shows counts and the log's tail, ``cancel`` cancels, ``workers`` shows slots and the last pulse; a
missing service, a wrong token and an unknown run ID are each said plainly."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pathlib
import re
import signal
import sys
from typing import Any

import pytest
import rich.console

from tests import waiting
from tests.integration import fleets, submitting
from workpath import directives
from workpath_operator.commands import rendering
from workpath_operator.service import runs, serving

TIMEOUT = 60.0


class Cli:
    """``workpath COMMAND ... --url URL --token TOKEN`` as subprocesses, in a directory without a dev.json."""

    def __init__(self, service: serving.DirectiveService, cwd: pathlib.Path, *, token: str = fleets.TOKEN) -> None:
        self.url = f"http://127.0.0.1:{service.port}"
        self.token = token
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPATH_")}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fleets.REPO), os.environ.get("PYTHONPATH")]))

    async def start(self, *args: str, service: bool = True) -> asyncio.subprocess.Process:
        where = ("--url", self.url, f"--token={self.token}") if service else ()
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workpath",
            *args,
            *where,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def __call__(self, *args: str, service: bool = True) -> tuple[int, str, str]:
        process = await self.start(*args, service=service)
        try:
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.communicate()
            raise AssertionError(f"workpath {' '.join(args)} did not finish in {TIMEOUT}s") from None
        return process.returncode or 0, out.decode(), err.decode()

    async def json(self, *args: str) -> Any:
        code, out, err = await self(*args, "-o", "json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
async def cli(fleet: fleets.WorkerFleet, service: serving.DirectiveService, tmp_path: pathlib.Path) -> Cli:
    await fleet.start("w-cli", slots=4)
    return Cli(service, tmp_path)


async def test_run_shows_children_done_of_total_and_get_lists_the_parent_and_its_children(cli: Cli) -> None:
    code, out, err = await cli("run", "test.fanout", "--param", "n=3", "--json")
    assert code == 0, err
    assert "children 3 of 3 done" in err
    parent = json.loads(out)
    assert parent["phase"] == "Succeeded" and parent["subroutines"]["succeeded"] == 3

    listed = await cli.json("get")
    assert listed["kind"] == "List"
    by_id = {item["runID"]: item for item in listed["items"]}
    assert by_id[parent["runID"]]["routineID"] == "test.fanout"
    children = [item for item in listed["items"] if item.get("parentRunID") == parent["runID"]]
    assert len(children) == 3
    assert {(c["routineID"], c["phase"], c["worker"]) for c in children} == {("test.square", "Succeeded", "w-cli")}

    one = await cli.json("get", parent["runID"])
    assert one["runID"] == parent["runID"] and one["roundTripSeconds"] > 0


async def test_get_prints_a_table_with_kubectls_columns(cli: Cli) -> None:
    code, out, err = await cli("run", "test.square", "--param", "x=4", "--no-wait")
    assert code == 0, err
    run_id = out.strip()
    code, out, err = await cli("get")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == list(rendering.RUN_COLUMNS)
    (row,) = [r for r in rows if r.startswith(run_id)]
    cells = re.split(r"\s{2,}", row.strip())
    assert cells[1] == "test.square" and cells[2] in {"Pending", "Running", "Succeeded"}
    assert re.fullmatch(r"\d+s", cells[-1])


async def test_describe_shows_status_children_counts_and_the_logs_tail(
    cli: Cli, service: serving.DirectiveService
) -> None:
    run = await submitting.finished(service, submitting.submit(service, "test.log", lines=3))
    code, out, err = await cli("describe", run.run_id)
    assert code == 0, err
    assert re.search(r"Phase:\s+Succeeded", out) and re.search(r"Worker:\s+w-cli", out)
    assert "Log (last 3 lines):" in out and "n=2" in out

    parent = await submitting.finished(service, submitting.submit(service, "test.fanout", n=2))
    code, out, err = await cli("describe", parent.run_id)
    assert code == 0, err
    assert re.search(r"Subroutines:\s+2 total, 2 succeeded, 0 failed, 0 running", out)


async def test_cancel_cancels_a_running_run_and_leaves_a_finished_one(
    cli: Cli, service: serving.DirectiveService
) -> None:
    run = submitting.submit(service, "test.sleep", seconds=60)
    await waiting.eventually(lambda: run.phase is runs.Phase.RUNNING, what="the run to start")
    code, out, err = await cli("cancel", run.run_id)
    assert code == 0, err
    assert (await cli.json("get", run.run_id))["phase"] == "Cancelled"
    code, out, err = await cli("cancel", run.run_id)
    assert code == 0 and "already Cancelled: nothing to cancel" in out


async def test_get_watch_prints_each_change_until_ctrl_c(cli: Cli, service: serving.DirectiveService) -> None:
    run = submitting.submit(service, "test.sleep", seconds=1.5)
    await waiting.eventually(lambda: run.phase is runs.Phase.RUNNING, what="the run to start")
    watch = await cli.start("get", run.run_id, "--watch", "-o", "json")
    assert watch.stdout is not None
    phases: list[str] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            document = ""
            while not phases or phases[-1] != "Succeeded":
                line = (await watch.stdout.readline()).decode()
                assert line, "the watch ended by itself"
                document += line
                try:
                    phases.append(json.loads(document)["phase"])
                except json.JSONDecodeError:
                    continue  # the first document is indented: read on
                document = ""
        watch.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watch.wait(), TIMEOUT) == 0
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
    assert phases == ["Running", "Succeeded"]


async def test_workers_shows_slots_busy_and_the_last_pulse(cli: Cli, service: serving.DirectiveService) -> None:
    sessions = service.dispatcher.sessions
    await waiting.eventually(
        lambda: sessions[directives.WorkerID("w-cli")].last_pulse is not None, what="a pulse answered"
    )
    listed = await cli.json("workers")
    (worker,) = listed["items"]
    assert (worker["workerID"], worker["pool"], worker["slots"], worker["busy"]) == ("w-cli", "default", 4, 0)
    assert worker["connected"] is True and worker["lastPulse"]
    code, out, err = await cli("workers")
    assert code == 0, err
    assert re.split(r"\s{2,}", out.splitlines()[0].strip()) == list(rendering.WORKER_COLUMNS)
    assert re.search(r"w-cli\s+default\s+4\s+0\s+yes\s+no\s+\d+s ago", out)


async def test_errors_say_what_to_fix(cli: Cli, service: serving.DirectiveService) -> None:
    code, _, err = await cli("get", service=False)
    assert code == 2
    assert "start 'workpath dev MODULE' in this directory" in err and "--url" in err

    wrong = Cli(service, cli.cwd, token="not-the-token")
    code, _, err = await wrong("get")
    assert code == 1
    assert "refused the token" in err and "--token" in err

    code, _, err = await cli("describe", "00000000-0000-4000-8000-000000000000")
    assert code == 1
    assert "no run 00000000-0000-4000-8000-000000000000" in err
    code, _, err = await cli("cancel", "no-such-run")
    assert code == 1 and "no run no-such-run" in err


def test_on_a_terminal_the_progress_is_a_bar_of_children_done_of_total() -> None:
    screen = io.StringIO()
    terminal = rich.console.Console(file=screen, force_terminal=True, width=100)
    with rendering.FanOutProgress(terminal) as progress:
        progress.update({"phase": "Running", "subroutines": {"total": 4, "succeeded": 1, "failed": 1, "running": 2}})
    shown = screen.getvalue()
    assert "children done (1 failed)" in shown and "2/4" in shown
