"""The downward API: values of a pod's fields (``fieldRef``) and its containers' resources (``resourceFieldRef``)."""

from __future__ import annotations

import re
from typing import Any

from tests.cluster import errors

POD_IP = "127.0.0.1"
"""Every process-kubelet pod runs on this machine, so this is each pod's IP and its host's."""

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: dict[str, Any], field_path: str) -> str:
    """The value of ``fieldRef.fieldPath`` for ``pod``, e.g. ``metadata.name`` or ``metadata.labels['app']``."""
    metadata, spec = pod["metadata"], pod["spec"]
    simple: dict[str, str | None] = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if field_path in simple:
        return simple[field_path] or ""
    if field_path in ("metadata.labels", "metadata.annotations"):
        values = metadata.get(field_path.split(".")[1]) or {}
        return "\n".join(f'{key}="{value}"' for key, value in sorted(values.items()))
    match = _SUBSCRIPT.match(field_path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise errors.PodSpecError(f"fieldRef.fieldPath {field_path!r} is not supported by the process-kubelet.")


def resource_value(container: dict[str, Any], resource: str) -> str:
    """The value of ``resourceFieldRef.resource`` (``limits.cpu``, ``requests.memory``...) as written in the spec."""
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        raise errors.PodSpecError(
            f"resourceFieldRef {resource!r}: container {container['name']!r} sets no {resource}; "
            "the process-kubelet has no node allocatable to fall back on, so set it in the pod."
        )
    return str(value)
