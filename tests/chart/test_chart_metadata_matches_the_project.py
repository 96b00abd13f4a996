"""The chart describes the workpath release it deploys: its appVersion (the default image tag) is the package's
version. (NOTES.txt is rendered by every `helm template` here, so a broken one fails every test; its text is checked
by tests/chart/test_chart_installs.py, where `helm install` prints it.)"""

from __future__ import annotations

import tomllib

from tests.chart import rendering


def test_app_version_is_the_package_version(chart_app_version: str) -> None:
    project = tomllib.loads((rendering.REPO / "pyproject.toml").read_text())["project"]

    assert chart_app_version == project["version"]
