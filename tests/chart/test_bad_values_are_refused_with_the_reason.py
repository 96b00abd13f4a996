"""Values that cannot work are refused by `helm template` (values.schema.json and the templates' checks), with a
message that names the value."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from tests.chart import rendering

WORKERS_ON = rendering.WORKER_VALUES["workers"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator": {"replicas": 2, "leaderElection": {"enabled": False}}}, "/operator/replicas"),
        ({"rbac": {"clusterWide": "yes"}}, "/rbac/clusterWide"),
        ({"workers": WORKERS_ON | {"slots": 0}}, "/workers/slots"),
        ({"workers": WORKERS_ON | {"slot": 4}}, "slot"),
        ({"workers": WORKERS_ON | {"token": {"expirationSeconds": 300}}}, "/workers/token/expirationSeconds"),
        ({"workers": WORKERS_ON | {"modules": ["not a module"]}}, "/workers/modules/0"),
        ({"workers": {"enabled": True}}, "workers.modules is empty"),
        ({"service": {"port": 0}}, "/service/port"),
        ({"operator": {"image": {"repository": ""}}}, "/operator/image/repository"),
    ],
    ids=[
        "two-operators-without-election",
        "clusterWide-not-boolean",
        "zero-slots",
        "misspelt-key",
        "token-too-short",
        "bad-module",
        "workers-without-modules",
        "port-zero",
        "empty-image",
    ],
)
def test_bad_values_are_refused(
    helm: rendering.Helm, chart: pathlib.Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(rendering.HelmError) as refused:
        helm.template(chart, values)

    assert message in refused.value.stderr


def test_template_checks_hold_without_the_schema(helm: rendering.Helm, chart: pathlib.Path) -> None:
    # `--skip-schema-validation` bypasses values.schema.json; the templates still refuse what cannot work.
    cases = {
        "operator.replicas is 2 without operator.leaderElection.enabled": {
            "operator": {"replicas": 2, "leaderElection": {"enabled": False}}
        },
        "workers.token.expirationSeconds is 300": {"workers": WORKERS_ON | {"token": {"expirationSeconds": 300}}},
    }
    for message, values in cases.items():
        with pytest.raises(rendering.HelmError) as refused:
            helm.run(
                "template", "wp", str(chart), "--skip-schema-validation",
                "--kube-version", rendering.KUBERNETES_VERSION, "--values", str(helm.values_file(values)),
            )  # fmt: skip
        assert message in refused.value.stderr
