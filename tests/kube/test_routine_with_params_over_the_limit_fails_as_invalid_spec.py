"""A Routine whose params are over the operator's --max-params-bytes (which the CRD's schema cannot count) fails at
once with InvalidSpec, the limit and how to change it, and is never dispatched; the breach is counted in /metrics."""

from __future__ import annotations

import urllib.request

import kubernetes.client

from tests.kube import operators, routines


def test_params_over_the_limit_fail_the_routine_with_the_limit(
    k8s_namespace: str, k8s_api: kubernetes.client.ApiClient, harness: operators.Harness
) -> None:
    operator = harness.start_operator(args=("--max-params-bytes", "1024"))
    routines.create(k8s_api, k8s_namespace, "too-big", routineID="k8s.sized", params={"size": 1, "pad": "x" * 2000})
    failed = routines.wait_for_phase(k8s_api, k8s_namespace, "too-big", "Failed", timeout=30)

    condition = routines.condition(failed, "Succeeded")
    assert condition["reason"] == "InvalidSpec"
    assert "the params of k8s.sized are 2019 bytes as JSON; the limit is 1024 bytes" in condition["message"]
    assert "WORKPATH_MAX_PARAMS_BYTES" in condition["message"]
    assert failed["status"]["attempt"] == 0 and "worker" not in failed["status"]
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.port}/metrics", timeout=5) as response:
        assert 'workpath_limit_breaches_total{limit="params_bytes"} 1' in response.read().decode()
