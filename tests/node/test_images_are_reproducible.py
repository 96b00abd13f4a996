"""The images built here are reproducible: unchanged inputs are not built again (the archive is named by the hash
of the Dockerfile, every file its COPY instructions name, and the base's ID), and building the same inputs again
gives the same image ID (the digest of the config, which names every layer's digest).

buildah's ``--timestamp 0`` sets the image's ``created`` and every file's mtime in the layers; what the build's own
commands write is the Dockerfile's business: pip's .pyc files record the install time of their sources (PEP 552
timestamp pycs) and useradd's /etc/shadow the day of the build, unless ``SOURCE_DATE_EPOCH`` is set in the stage
(then pip writes hash-based pycs, useradd that day): each stage of both Dockerfiles declares
``ARG SOURCE_DATE_EPOCH``, which the builder passes.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.cluster import images, node


def _declares_source_date_epoch(name: str) -> bool:
    """Whether every stage of the image's Dockerfile declares ``ARG SOURCE_DATE_EPOCH``."""
    text = images.DOCKERFILES[name].read_text()
    stages = re.split(r"^FROM\s", text, flags=re.MULTILINE)[1:]
    return all(re.search(r"^ARG\s+SOURCE_DATE_EPOCH\b", stage, flags=re.MULTILINE) for stage in stages)


def test_unchanged_inputs_are_not_built_again(node_binaries: node.NodeBinaries) -> None:
    builder = images.Builder()
    first = builder.ensure()
    started = time.monotonic()
    again = images.Builder().ensure()

    assert again == first
    assert time.monotonic() - started < 10, "an unchanged image was built again"
    assert all(image.archive.exists() for image in again.values())


@pytest.mark.parametrize("name", list(images.DOCKERFILES))
def test_the_same_inputs_build_the_same_image(node_binaries: node.NodeBinaries, name: str) -> None:
    assert _declares_source_date_epoch(name), (
        f"images/{name}.Dockerfile must declare ARG SOURCE_DATE_EPOCH in each stage: without it pip's .pyc files keep "
        "their sources' install time and /etc/shadow the day of the build"
    )
    builder = images.Builder()
    cached = builder.ensure()[name]
    rebuilt = builder.rebuild(name)

    assert rebuilt == builder.image_id(cached.reference)
