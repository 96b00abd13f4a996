"""``metrics.serviceMonitor.enabled`` renders a ServiceMonitor that scrapes the operator Service's directive port
at /metrics (off by default); ``metrics.grafanaDashboard.enabled`` ships the dashboard JSON in a ConfigMap labelled
for Grafana's sidecar. kubernetes-validate has no schema for ServiceMonitors: a structural schema of the fields the
chart sets stands in for the Prometheus Operator's CRD."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.chart import rendering

TOGGLES: dict[str, Any] = {
    "metrics": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "10s", "labels": {"release": "kps"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "workpath"}},
    }
}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h))+$"}
#: The part of monitoring.coreos.com/v1 ServiceMonitor's schema (prometheus-operator's CRD) that the chart uses.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                        },
                    },
                },
            },
        },
    },
}


def test_by_default_neither_is_rendered(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render()
    assert rendered.of_kind("ServiceMonitor") == []
    assert [c for c in rendered.of_kind("ConfigMap") if "workpath.json" in c.get("data", {})] == []


def test_the_service_monitor_scrapes_the_operator_services_directive_port(
    render: Callable[..., rendering.Rendered],
) -> None:
    rendered = render(TOGGLES)
    (monitor,) = rendered.of_kind("ServiceMonitor")
    jsonschema.Draft7Validator(SERVICE_MONITOR).validate(monitor)
    (service,) = rendered.of_kind("Service")

    assert monitor["metadata"]["namespace"] == rendering.NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), "the ServiceMonitor must select the Service"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == ("/metrics", "15s", "10s")


def test_the_dashboard_ships_in_a_config_map_for_grafanas_sidecar(render: Callable[..., rendering.Rendered]) -> None:
    rendered = render(TOGGLES)
    (config_map,) = [c for c in rendered.of_kind("ConfigMap") if "workpath.json" in c.get("data", {})]
    assert rendering.validation_errors(config_map, {}) == []
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "workpath"}
    shipped = json.loads(config_map["data"]["workpath.json"])
    assert shipped == json.loads((rendering.CHART / "dashboards" / "workpath.json").read_text())


@pytest.mark.parametrize("interval", ["30", "soon", ""])
def test_a_bad_scrape_interval_is_refused(helm: rendering.Helm, interval: str) -> None:
    values = {"metrics": {"serviceMonitor": {"enabled": True, "interval": interval}}}
    with pytest.raises(rendering.HelmError) as refused:
        helm.template(rendering.CHART, values)
    assert "/metrics/serviceMonitor/interval" in refused.value.stderr
