"""`workpath probe ready|live` reads the worker's status file: exit 0 with a line on stdout when the probe passes,
1 with a one-line reason on stderr when it fails (no file, not a status, stale, starting, stopped, not connected,
draining), 2 when it is not told where the file is. It starts without aiohttp or the other commands."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import pytest

from workpath import cli, probing, settings

URL = "ws://127.0.0.1:7740/v1/workers"


def probe(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int | str | None, str, str]:
    """``workpath probe ARGV``: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        cli.main(["probe", *argv])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def written(path: pathlib.Path, state: probing.State, detail: str = URL) -> probing.Status:
    """The file as a worker in ``state`` writes it."""
    probing.StatusFile(path, worker_id="w-1", interval=5.0).set(state, detail)
    return probing.read(path)


def rewrite(path: pathlib.Path, **fields: Any) -> None:
    """Change fields of the file as no worker would (an old refresh, a bad state)."""
    path.write_text(json.dumps(json.loads(path.read_text()) | fields))


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "workpath" / "status"


def test_a_connected_worker_is_ready_and_live(capsys: pytest.CaptureFixture[str], path: pathlib.Path) -> None:
    status = written(path, "connected")

    code, out, err = probe(capsys, "ready", "--status-file", str(path))
    assert (code, err) == (0, "")
    assert out.startswith(f"ready: worker w-1 (pid {status.pid}) is connected ({URL}) for ")
    assert out.count("\n") == 1
    code, out, err = probe(capsys, "live", "--status-file", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("live: worker w-1")


@pytest.mark.parametrize("state", ["connecting", "reconnecting", "draining"])
def test_a_worker_not_connected_or_draining_is_live_but_not_ready(
    capsys: pytest.CaptureFixture[str], path: pathlib.Path, state: probing.State
) -> None:
    status = written(path, state, "lost the connection to ws://x: closed")

    code, out, err = probe(capsys, "ready", "--status-file", str(path))
    assert (code, out) == (1, "")
    assert err.startswith(
        f"not ready: worker w-1 (pid {status.pid}) is {state} (lost the connection to ws://x: closed)"
    )
    assert err.count("\n") == 1
    assert probe(capsys, "live", "--status-file", str(path))[0] == 0


def test_a_stale_file_fails_liveness_and_readiness(capsys: pytest.CaptureFixture[str], path: pathlib.Path) -> None:
    written(path, "connected")
    rewrite(path, clock=time.monotonic() - 16)  # more than 3 intervals of 5 s

    code, out, err = probe(capsys, "live", "--status-file", str(path))
    assert (code, out) == (1, "")
    assert f"last refreshed {path} 16s ago, over 15s: its event loop is stuck (it was connected ({URL})" in err
    assert probe(capsys, "ready", "--status-file", str(path))[0] == 1
    assert probe(capsys, "live", "--status-file", str(path), "--max-age", "30")[0] == 0


def test_the_age_is_measured_on_the_monotonic_clock(capsys: pytest.CaptureFixture[str], path: pathlib.Path) -> None:
    written(path, "connected")
    rewrite(path, updated=time.time() - 3600)  # the wall clock stepped: it is only shown

    assert probe(capsys, "live", "--status-file", str(path))[0] == 0


@pytest.mark.parametrize(("state", "detail"), [("starting", "importing team.jobs"), ("stopped", "drained")])
def test_a_worker_starting_or_stopped_is_neither_live_nor_ready(
    capsys: pytest.CaptureFixture[str], path: pathlib.Path, state: probing.State, detail: str
) -> None:
    status = written(path, state, detail)

    for kind in ("live", "ready"):
        code, _, err = probe(capsys, kind, "--status-file", str(path))
        assert code == 1
        assert err.startswith(f"not {kind}: worker w-1 (pid {status.pid}) is {state} ({detail}) for ")


def test_no_file_fails_saying_so(capsys: pytest.CaptureFixture[str], path: pathlib.Path) -> None:
    code, _, err = probe(capsys, "live", "--status-file", str(path))

    assert code == 1
    assert err == (
        f"not live: no status file at {path}: the worker has not started yet, "
        f"or runs without WORKPATH_STATUS_FILE={path}\n"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "JSONDecodeError"),
        ("{}", "KeyError: 'state'"),
        ("[]", "TypeError"),
        (None, "unknown state 'asleep'"),
    ],
)
def test_a_file_that_is_not_a_status_fails_saying_so(
    capsys: pytest.CaptureFixture[str], path: pathlib.Path, text: str | None, problem: str
) -> None:
    written(path, "connected")
    if text is None:
        rewrite(path, state="asleep")
    else:
        path.write_text(text)

    code, _, err = probe(capsys, "ready", "--status-file", str(path))
    assert code == 1
    assert err.startswith(f"not ready: {path} is not a worker's status file (")
    assert problem in err


def test_the_file_comes_from_the_workers_variable(
    capsys: pytest.CaptureFixture[str], path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.WorkerSettings.env_name("status_file") == probing.ENV_STATUS_FILE
    written(path, "connected")
    monkeypatch.setenv(probing.ENV_STATUS_FILE, str(path))

    assert probe(capsys, "ready")[0] == 0


def test_no_file_given_is_bad_usage(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(probing.ENV_STATUS_FILE, raising=False)

    assert probe(capsys, "live") == (
        2,
        "",
        "workpath probe: no status file: give --status-file or WORKPATH_STATUS_FILE, the same as the worker's\n",
    )


@pytest.mark.parametrize("bad", [["sideways"], ["live", "--max-age", "0"], ["live", "--max-age", "soon"]])
def test_a_bad_kind_or_age_is_bad_usage(capsys: pytest.CaptureFixture[str], bad: list[str]) -> None:
    code, _, err = probe(capsys, *bad, "--status-file", "/nonexistent")

    assert code == 2
    assert "usage: workpath probe" in err


def test_the_worker_command_says_starting_before_importing_its_routines(
    capsys: pytest.CaptureFixture[str], path: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    written(path, "connected")  # left by the container that ran before, in the same pod
    with pytest.raises(SystemExit):
        cli.main(
            ["worker", "unit_no_such_module", "--app-dir", str(tmp_path), "--url", URL, "--status-file", str(path)]
        )

    status = probing.read(path)
    assert (status.state, status.detail) == ("starting", "importing unit_no_such_module")
    capsys.readouterr()
    assert probe(capsys, "ready", "--status-file", str(path))[0] == 1


def test_the_probe_starts_without_aiohttp_or_the_other_commands(path: pathlib.Path) -> None:
    written(path, "connected")
    script = (
        "import atexit, sys\n"
        "heavy = ('aiohttp', 'workpath.connecting', 'workpath.working', 'workpath_operator')\n"
        "atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr))\n"
        "from workpath import cli\n"
        "cli.main(['probe', 'ready'])\n"
    )
    environ = os.environ | {probing.ENV_STATUS_FILE: str(path)}
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ready: worker w-1")
    assert done.stderr.splitlines()[-1] == "[]"
