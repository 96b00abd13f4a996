"""Rewrite ``pyproject.toml`` into the metadata of a distribution with the worker package only.

The worker image installs ``workpath`` (the worker runtime and SDK) without ``workpath_operator``: no control-plane
code, and no ``workpath operator``/``run``/``dev``/``logs`` commands (their entry points would only fail to load).
The project keeps one pyproject.toml; this derives the worker's from it, so versions and dependencies cannot drift.

    python images/worker_only.py pyproject.toml
"""

from __future__ import annotations

import json
import pathlib
import sys
import tomllib
from typing import Any

WORKER_SOURCE = "worker"
KEPT_EXTRAS = ("speed",)


def worker_only(project: dict[str, Any]) -> dict[str, Any]:
    """The tables of the worker-only pyproject.toml, from the whole project's."""
    meta = project["project"]
    setuptools = project["tool"]["setuptools"]
    extras = meta.get("optional-dependencies", {})
    return {
        "build-system": project["build-system"],
        "project": {
            key: meta[key]
            for key in ("name", "version", "description", "readme", "requires-python", "license", "dependencies")
            if key in meta
        }
        | {"optional-dependencies": {name: extras[name] for name in KEPT_EXTRAS if name in extras}}
        | {"scripts": meta.get("scripts", {})},
        "tool": {
            "setuptools": {
                "packages": {"find": {"where": [WORKER_SOURCE]}},
                "package-data": {
                    name: files
                    for name, files in setuptools.get("package-data", {}).items()
                    if (pathlib.Path(WORKER_SOURCE) / name).is_dir()
                },
            }
        },
    }


def dump(tables: dict[str, Any], prefix: str = "") -> str:
    """TOML for nested tables of strings and lists of strings (all this file needs; JSON strings are TOML)."""
    scalars = [
        f"{json.dumps(key)} = {json.dumps(value)}" for key, value in tables.items() if not isinstance(value, dict)
    ]
    nested = [dump(value, f"{prefix}{json.dumps(key)}.") for key, value in tables.items() if isinstance(value, dict)]
    header = [f"[{prefix.rstrip('.')}]"] if prefix and scalars else []
    return "\n".join([*header, *scalars, "", *nested]).strip() + "\n"


def main(path: str) -> None:
    file = pathlib.Path(path)
    file.write_text(dump(worker_only(tomllib.loads(file.read_text()))))


if __name__ == "__main__":
    main(*sys.argv[1:])
