"""Local mode as a newcomer uses it: `workpath dev`, `workpath run`, `workpath logs`, and the example."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sys

from tests.integration import fleets


async def workpath(*args: str, cwd: pathlib.Path, timeout: float = 60.0) -> tuple[int, str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fleets.REPO), env.get("PYTHONPATH")]))
    env.pop("WORKPATH_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workpath",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        raise AssertionError(f"workpath {' '.join(args)} did not finish in {timeout}s:\n{err.decode()}") from None
    return process.returncode or 0, out.decode(), err.decode()


def fields(report: str) -> dict[str, str]:
    rows = (
        line.split(None, 1) if not line.startswith(("run time", "round trip")) else line.split("  ", 1)
        for line in report.splitlines()
    )
    return {k.strip(): v.strip() for k, v in (r for r in rows if len(r) == 2)}


async def test_the_example_fan_out_runs_in_local_mode(tmp_path: pathlib.Path) -> None:
    code, out, err = await workpath(
        "dev",
        "examples.reports",
        "--workers",
        "2",
        "--run",
        "reports.build",
        "--param",
        "month=2026-10",
        "--port",
        "0",
        cwd=fleets.REPO,
    )
    assert code == 0, err
    report = fields(out)
    assert report["phase"] == "Succeeded"
    assert report["routine"] == "reports.build"
    assert report["subroutines"].startswith("4 total, 4 succeeded")
    result = json.loads(report["result"])
    assert result["month"] == "2026-10" and result["parts"] == 4 and result["rows"] > 400
    for key in ("created", "started", "completed", "run time", "round trip", "worker"):
        assert report[key] not in {"", "-"}, key


async def test_workpath_run_and_logs_talk_to_a_running_dev_service(tmp_path: pathlib.Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fleets.REPO), env.get("PYTHONPATH")]))
    dev = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workpath",
        "dev",
        "tests.integration.routines",
        "--workers",
        "1",
        "--port",
        "0",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert dev.stderr is not None
        async with asyncio.timeout(60):
            while b"submit with" not in await dev.stderr.readline():
                pass
        assert (tmp_path / ".workpath" / "dev.json").exists()

        code, out, err = await workpath("run", "test.log", "--param", "lines=3", cwd=tmp_path)
        assert code == 0, err
        report = fields(out)
        assert report["phase"] == "Succeeded" and report["result"] == "3"

        code, out, err = await workpath("logs", report["run"], cwd=tmp_path)
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == 3 and all("line" in line for line in lines)
        assert "n=2" in lines[2]

        code, out, err = await workpath("run", "test.fail", cwd=tmp_path)
        assert code == 1
        assert "ValueError: this input can never work" in out

        code, out, err = await workpath("run", "bad id!", cwd=tmp_path)
        assert code == 2
        assert "routineID" in err or "routine_id" in err
    finally:
        dev.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(dev.wait(), 30) == 0
    assert not (tmp_path / ".workpath" / "dev.json").exists()


async def test_workpath_run_without_a_service_says_what_to_do(tmp_path: pathlib.Path) -> None:
    code, _, err = await workpath("run", "reports.build", cwd=tmp_path)
    assert code == 2
    assert "workpath dev" in err
