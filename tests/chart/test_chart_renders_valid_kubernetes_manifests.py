"""Every object the chart renders, for every value set, is valid for the Kubernetes release we test against
(strict schemas: unknown fields fail), custom resources are valid for their CRDs, and `helm lint --strict` passes."""

from __future__ import annotations

import collections
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import rendering

VALUE_SETS = pytest.mark.parametrize("values", rendering.VALUE_SETS.values(), ids=rendering.VALUE_SETS.keys())
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}


@VALUE_SETS
def test_every_rendered_object_is_valid(render: Callable[..., rendering.Rendered], values: dict[str, Any]) -> None:
    rendered = render(values)
    custom = rendering.custom_resource_schemas()

    errors = [error for obj in rendered.objects for error in rendering.validation_errors(obj, custom)]

    assert rendered.objects
    assert errors == [], f"invalid for Kubernetes {rendering.schema_version()}:\n" + "\n".join(errors)


@VALUE_SETS
def test_objects_are_labelled_namespaced_and_uniquely_named(
    render: Callable[..., rendering.Rendered], values: dict[str, Any]
) -> None:
    rendered = render(values)
    names = collections.Counter((obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects)

    assert [name for name, count in names.items() if count > 1] == []
    for obj in rendered.objects:
        metadata = obj["metadata"]
        where = f"{obj['kind']}/{metadata['name']}"
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in metadata, where
        else:
            assert metadata.get("namespace") == rendering.NAMESPACE, where
        labels = metadata.get("labels") or {}
        assert labels.get("app.kubernetes.io/instance") == rendering.RELEASE, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        for key, value in values.get("commonLabels", {}).items():
            assert labels.get(key) == value, where


@VALUE_SETS
def test_helm_lint_passes_strictly(helm: rendering.Helm, chart: pathlib.Path, values: dict[str, Any]) -> None:
    output = helm.lint(chart, values)

    assert "1 chart(s) linted, 0 chart(s) failed" in output


def test_rendered_objects_cover_what_users_install(render: Callable[..., rendering.Rendered]) -> None:
    kinds = {obj["kind"] for obj in render(rendering.VALUE_SETS["everything"]).objects}

    assert {"Deployment", "Service", "ServiceAccount", "WorkerPool"} <= kinds
