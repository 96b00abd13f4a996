"""A container's environment as the kubelet builds it: envFrom, env with valueFrom, and $(VAR) expansion."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.cluster import errors, podfields, references

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, defined: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, others kept, ``$$`` escapes a ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def container_environment(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    refs: references.References,
    service_env: Mapping[str, str],
) -> dict[str, str]:
    """The variables the pod defines for ``container`` (after ``service_env``), in Kubernetes' order."""
    namespace = pod["metadata"]["namespace"]
    defined = dict(service_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        data = _env_from_source(namespace, source, refs)
        defined.update({prefix + key: value.decode() for key, value in (data or {}).items()})
    for variable in container.get("env") or []:
        value = _variable_value(pod, container, variable, refs=refs, defined=defined)
        if value is not None:
            defined[variable["name"]] = value
    return defined


def _env_from_source(namespace: str, source: dict[str, Any], refs: references.References) -> dict[str, bytes] | None:
    if "configMapRef" in source:
        ref = source["configMapRef"]
        return refs.config_map(namespace, ref["name"], optional=ref.get("optional", False))
    if "secretRef" in source:
        ref = source["secretRef"]
        return refs.secret(namespace, ref["name"], optional=ref.get("optional", False))
    raise errors.PodSpecError(f"envFrom source {source!r} is not supported by the process-kubelet.")


def _variable_value(
    pod: dict[str, Any],
    container: dict[str, Any],
    variable: dict[str, Any],
    *,
    refs: references.References,
    defined: Mapping[str, str],
) -> str | None:
    """The value of one ``env`` entry; None if it comes from an optional reference that is missing."""
    if "value" in variable:
        return expand(variable["value"], defined)
    source = variable.get("valueFrom")
    if not source:
        return ""
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return podfields.field_value(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        return podfields.resource_value(container, source["resourceFieldRef"]["resource"])
    key_sources: dict[str, tuple[str, Callable[..., dict[str, bytes] | None]]] = {
        "secretKeyRef": ("Secret", refs.secret),
        "configMapKeyRef": ("ConfigMap", refs.config_map),
    }
    for field, (kind, read) in key_sources.items():
        if field in source:
            ref = source[field]
            optional = ref.get("optional", False)
            data = read(namespace, ref["name"], optional=optional)
            if data is None or (ref["key"] not in data and optional):
                return None
            if ref["key"] not in data:
                raise errors.MissingReferenceError(f"no key {ref['key']!r} in {kind} {namespace}/{ref['name']}")
            return data[ref["key"]].decode()
    raise errors.PodSpecError(
        f"env {variable['name']!r}: valueFrom {sorted(source)} is not supported by the process-kubelet."
    )
