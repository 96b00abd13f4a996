"""The chart's crds/ are byte-identical copies of crds/ (the single source), installed by Helm, never templated."""

from __future__ import annotations

import pathlib

from tests.chart import rendering

FIX = "cp crds/*.yaml charts/workpath/crds/"


def test_chart_crd_files_are_byte_identical_to_the_source_crds() -> None:
    source = {path.name: path.read_bytes() for path in sorted(rendering.SOURCE_CRDS.glob("*.yaml"))}
    copies = {path.name: path.read_bytes() for path in sorted((rendering.CHART / "crds").iterdir())}

    assert source, f"no CRDs in {rendering.SOURCE_CRDS}"
    assert sorted(copies) == sorted(source), f"the chart's crds/ must hold exactly the files of crds/: {FIX}"
    drifted = [name for name in source if copies[name] != source[name]]
    assert not drifted, f"charts/workpath/crds/ differs from crds/ in {drifted}: {FIX}"


def test_helm_renders_the_crds_only_from_crds_dir(helm: rendering.Helm, chart: pathlib.Path) -> None:
    # Helm installs crds/ before the templates and never deletes them: `helm uninstall` keeps users' Routines.
    templated = rendering.Rendered(helm.template(chart))
    with_crds = rendering.Rendered(helm.template(chart, include_crds=True))
    expected = [
        document
        for path in sorted(rendering.SOURCE_CRDS.glob("*.yaml"))
        for document in rendering.load_documents(path.read_text())
    ]

    assert templated.of_kind("CustomResourceDefinition") == []
    crds = sorted(with_crds.of_kind("CustomResourceDefinition"), key=lambda crd: crd["metadata"]["name"])
    assert [crd["metadata"]["name"] for crd in crds] == ["routines.workpath.dev", "workerpools.workpath.dev"]
    assert crds == sorted(expected, key=lambda crd: crd["metadata"]["name"])
    for crd in crds:
        assert rendering.validation_errors(crd, {}) == []
