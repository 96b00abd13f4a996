"""The images (images/*.Dockerfile) fit the chart and the project, checked without Docker: a python:3.12-slim base
(the project's minimum Python), a numeric non-root user that the chart's runAsUser matches, the `workpath`
entrypoint, the operator extra in the operator image, the example routines in the worker image, and build-context
files that exist and that .dockerignore does not drop."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import pathlib
import re
import tomllib

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
IMAGES = {"operator": REPO / "images" / "operator.Dockerfile", "worker": REPO / "images" / "worker.Dockerfile"}
BASE = "python:3.12-slim"


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _instructions(path: pathlib.Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip()))
    return found


def _final_stage(path: pathlib.Path) -> list[Instruction]:
    instructions = _instructions(path)
    last_from = max(i for i, instruction in enumerate(instructions) if instruction.keyword == "FROM")
    return instructions[last_from:]


def _chart_values() -> dict[str, object]:
    values: dict[str, object] = yaml.safe_load((REPO / "charts" / "workpath" / "values.yaml").read_text())
    return values


@pytest.mark.parametrize("image", IMAGES)
def test_image_runs_workpath_as_the_charts_non_root_user(image: str) -> None:
    stage = _final_stage(IMAGES[image])
    values = _chart_values()
    section = values["operator" if image == "operator" else "workers"]
    assert isinstance(section, dict)

    assert all(i.arguments.split()[0] == BASE for i in _instructions(IMAGES[image]) if i.keyword == "FROM")
    users = [i.arguments for i in stage if i.keyword == "USER"]
    assert users, "the final stage sets no USER: the container would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric uid, so that runAsNonRoot can verify it"
    assert int(uid) == section["podSecurityContext"]["runAsUser"]
    assert gid == "" or int(gid) == section["podSecurityContext"]["runAsGroup"]
    (entrypoint,) = [json.loads(i.arguments) for i in stage if i.keyword == "ENTRYPOINT"]
    assert entrypoint == ["workpath"]


def test_base_python_is_one_the_project_supports() -> None:
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", requires)
    assert minimum is not None, requires
    base = re.fullmatch(r"python:(\d+)\.(\d+)-slim", BASE)
    assert base is not None
    assert tuple(map(int, base.groups())) >= tuple(map(int, minimum.groups()))


def test_operator_image_has_the_operator_extra_and_worker_image_the_examples() -> None:
    operator_runs = " ".join(i.arguments for i in _instructions(IMAGES["operator"]) if i.keyword == "RUN")
    worker = _final_stage(IMAGES["worker"])

    assert re.search(r"pip install '\.\[[^]]*\boperator\b", operator_runs)
    workdir = [i.arguments for i in worker if i.keyword == "WORKDIR"][-1]
    copies = [i.arguments.split() for i in worker if i.keyword == "COPY" and "--from" not in i.arguments]
    # `workpath worker examples.reports` imports from the working directory (--app-dir defaults to ".").
    assert ["examples/", "examples/"] in copies and workdir == "/app"


@pytest.mark.parametrize("image", IMAGES)
def test_build_context_has_what_the_image_copies(image: str) -> None:
    ignored = [
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for instruction in _instructions(IMAGES[image])
        if instruction.keyword == "COPY" and "--from" not in instruction.arguments
        for source in instruction.arguments.split()[:-1]
    ]

    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        top = pathlib.PurePosixPath(source).parts[0]
        assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), f"{source} is in .dockerignore"
