"""The images install offline from the pins of images/constraints.txt: every direct dependency of what the images
install (workpath's own, and its `operator` and `speed` extras) has a pin there, so adding a dependency to
pyproject.toml without `python -m tests.cluster.images --lock` fails here, in seconds, not in an image build."""

from __future__ import annotations

import pathlib
import re
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_direct_dependency_of_the_images_is_pinned() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r) for r in [*project["dependencies"], *extras["operator"], *extras["speed"]]}
    wanted.discard("workpath")
    pins = (REPO / "images" / "constraints.txt").read_text().splitlines()
    pinned = {_name(line) for line in pins if line.strip() and not line.startswith("#")}
    missing = sorted(wanted - pinned)
    assert not missing, f"pin these in images/constraints.txt (python -m tests.cluster.images --lock): {missing}"
