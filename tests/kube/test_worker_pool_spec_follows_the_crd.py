"""The operator reads a WorkerPool's spec with the CRD's own fields, defaults and rules, so that a pool the API server
should have refused (admitted before a CRD update, or with CEL off) gets an InvalidSpec reason, not a crash."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pydantic
import pytest

from tests.chart import rendering
from tests.cluster import manifests
from workpath_operator.kube import pools

CRD = pathlib.Path(__file__).resolve().parents[2] / "crds" / "workerpools.workpath.dev.yaml"


def _spec_schema() -> dict[str, Any]:
    (crd,) = rendering.load_documents(CRD.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _pool(name: str = "reports", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": pools.API_VERSION,
        "kind": pools.KIND,
        "metadata": {"name": name, "namespace": "analytics", "uid": "u-1", "generation": 1},
        "spec": {"image": "workpath/worker:0.1.0", "modules": ["examples.reports"], "routines": ["reports.*"]} | spec,
    }


def _aliases() -> dict[str, pydantic.fields.FieldInfo]:
    return {field.alias or name: field for name, field in pools.PoolSpec.model_fields.items()}


def test_the_model_has_exactly_the_crd_spec_fields() -> None:
    schema = _spec_schema()

    assert set(_aliases()) == set(schema["properties"])
    assert {alias for alias, field in _aliases().items() if field.is_required()} == set(schema["required"])


def test_the_model_defaults_are_the_crd_defaults() -> None:
    defaults = {alias: props["default"] for alias, props in _spec_schema()["properties"].items() if "default" in props}

    assert defaults, "the CRD has no spec defaults"
    assert {alias: _aliases()[alias].default for alias in defaults} == defaults


def test_the_model_patterns_are_the_crd_patterns() -> None:
    properties = _spec_schema()["properties"]

    assert properties["image"]["pattern"] == pools.IMAGE_PATTERN
    assert properties["modules"]["items"]["pattern"] == pools.MODULE_PATTERN
    assert properties["routines"]["items"]["pattern"] == pools.ROUTINE_PATTERN


@pytest.mark.parametrize(
    "field", ["slots", "minReplicas", "maxReplicas", "scaleDownDelaySeconds", "drainTimeoutSeconds"]
)
def test_the_model_has_the_crd_bounds(field: str) -> None:
    props = _spec_schema()["properties"][field]
    minimum, maximum = props["minimum"], props.get("maximum")
    base = {"minReplicas": 0, "maxReplicas": 10_000}

    pools.spec_of(_pool(**base | {field: minimum}))
    with pytest.raises(pools.InvalidPoolError, match=f"spec.{field}: "):
        pools.spec_of(_pool(**base | {field: minimum - 1}))
    if maximum is not None:
        pools.spec_of(_pool(**base | {field: maximum}))
        with pytest.raises(pools.InvalidPoolError, match=f"spec.{field}: "):
            pools.spec_of(_pool(**base | {field: maximum + 1}))


def test_a_full_spec_is_valid_for_the_crd_and_read_whole() -> None:
    body = _pool(**manifests.FULL_POOL_SPEC)
    spec = pools.spec_of(body)

    assert rendering.validation_errors(body, rendering.custom_resource_schemas()) == []
    assert spec.model_dump(mode="json", exclude_none=True) == manifests.FULL_POOL_SPEC


def test_a_minimal_spec_gets_the_defaults() -> None:
    spec = pools.spec_of(_pool())

    assert (spec.slots, spec.min_replicas, spec.max_replicas) == (10, 0, 10)
    assert (spec.scale_down_delay_seconds, spec.drain_timeout_seconds) == (60, 30)
    assert spec.service_account_name is None


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "spec: minReplicas (5) must not exceed maxReplicas (2)"),
        ({"slots": 0}, "spec.slots: Input should be greater than or equal to 1"),
        ({"modules": []}, "spec.modules: list at least one module with @workpath.routine functions"),
        ({"modules": ["examples/reports.py"]}, "spec.modules: 'examples/reports.py' is not a module path"),
        ({"routines": []}, "spec.routines: list at least one routine ID or pattern"),
        ({"routines": ["reports build"]}, "spec.routines: 'reports build' is not a routine ID or glob pattern"),
        ({"image": "Worker Image"}, "spec.image: 'Worker Image' is not an image reference"),
        ({"image": "worker:"}, "spec.image: 'worker:' is not an image reference"),
        ({"podLabels": {"workpath.dev/pool": "other"}}, "spec.podLabels: podLabels must not set workpath.dev/pool"),
        (
            {"podAnnotations": {pools.POD_DELETION_COST_ANNOTATION: "5"}},
            "spec.podAnnotations: podAnnotations must not set controller.kubernetes.io/pod-deletion-cost",
        ),
        ({"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}, "spec.env: env names A more than once"),
        ({"maxReplicas": "many"}, "spec.maxReplicas: Input should be a valid integer"),
    ],
    ids=[
        "min-above-max",
        "no-slots",
        "no-modules",
        "module-path",
        "no-routines",
        "routine-pattern",
        "image-spaces",
        "image-empty-tag",
        "reserved-label",
        "deletion-cost",
        "env-twice",
        "replicas-type",
    ],
)
def test_a_bad_spec_gets_a_reason_that_says_what_to_fix(spec: dict[str, Any], reason: str) -> None:
    with pytest.raises(pools.InvalidPoolError) as invalid:
        pools.spec_of(_pool(**spec))

    assert str(invalid.value).startswith("the WorkerPool's spec cannot be run: ")
    assert reason in str(invalid.value)


def test_a_missing_field_is_named() -> None:
    body = _pool()
    del body["spec"]["modules"]

    with pytest.raises(pools.InvalidPoolError, match=r"spec\.modules: Field required"):
        pools.spec_of(body)


def test_a_name_too_long_for_the_pool_label_is_refused() -> None:
    pools.spec_of(_pool("p" * 63))
    with pytest.raises(pools.InvalidPoolError, match="64 characters; at most 63"):
        pools.spec_of(_pool("p" * 64))


@pytest.mark.parametrize(
    "image",
    [
        "w",
        "workpath:dev",
        "workpath/worker:0.1.0",
        "registry.example/big-worker:2.0",
        "localhost:5000/team/worker",
        "ghcr.io/org/team/worker_x:v1.2-rc.3",
        "quay.io/org/worker@sha256:" + "a" * 64,
        "quay.io/org/worker:1.0@sha256:" + "b" * 64,
    ],
)
def test_image_references_are_accepted(image: str) -> None:
    assert pools.spec_of(_pool(image=image)).image == image


@pytest.mark.parametrize(
    "image", ["", " w", "Worker", "a//b", "registry.example/", "w:tag with space", "w@sha256:abc", "-w"]
)
def test_bad_image_references_are_refused_by_model_and_crd_alike(image: str) -> None:
    with pytest.raises(pools.InvalidPoolError, match=r"spec\.image"):
        pools.spec_of(_pool(image=image))
    assert re.fullmatch(_spec_schema()["properties"]["image"]["pattern"], image) is None


def test_a_pool_serves_the_routine_ids_its_patterns_match() -> None:
    spec = pools.spec_of(_pool(routines=["reports.*", "jobs.build"]))

    assert spec.serves("reports.build")
    assert spec.serves("jobs.build")
    assert not spec.serves("jobs.builder")
    assert not spec.serves("etl.load")


def test_two_pools_claiming_a_routine_id_are_decided_the_same_way_every_time() -> None:
    declared = {
        "catch-all": pools.spec_of(_pool("catch-all", routines=["*"])),
        "reports-b": pools.spec_of(_pool("reports-b", routines=["reports.*"])),
        "reports-a": pools.spec_of(_pool("reports-a", routines=["reports.*"])),
        "exact": pools.spec_of(_pool("exact", routines=["reports.build"])),
    }

    assert pools.claiming_pool("reports.build", declared) == "exact"  # an exact ID beats any glob
    assert pools.claiming_pool("reports.part", declared) == "reports-a"  # a tie goes to the first name
    assert pools.claiming_pool("etl.load", declared) == "catch-all"
    assert pools.claiming_pool("reports.part", dict(reversed(declared.items()))) == "reports-a"
    assert pools.claiming_pool("etl.load", {"exact": declared["exact"]}) is None


def test_the_crd_spec_fields_all_have_descriptions() -> None:
    properties = _spec_schema()["properties"]

    assert [alias for alias, props in properties.items() if not props.get("description")] == []
