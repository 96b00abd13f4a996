"""Pod volumes as local directories, and container paths rewritten to point into them.

A container sees a volume at its ``mountPath``; a local process cannot, so every volume gets a directory under
the pod's directory, filled as the kubelet would fill it, and any ``mountPath`` that appears in the container's
command, args, env values or workingDir is rewritten to that directory. A path under a mount point that exists on
this machine (a checkout in ``/tmp`` while ``/tmp`` is an emptyDir) is the machine's own and is left alone.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from tests.cluster import errors, podfields, references

DEFAULT_MODE = 0o644
SUPPORTED = ("emptyDir", "secret", "configMap", "projected", "downwardAPI", "hostPath")


class PathMapper:
    """Rewrites container paths (a ``mountPath`` and anything under it) into local paths."""

    def __init__(self, mounts: Mapping[str, pathlib.Path]) -> None:
        self._mounts = {path.rstrip("/") or "/": local for path, local in mounts.items()}
        # The longest mount path first, so that a nested mount wins over its parent.
        alternatives = "|".join(re.escape(path) for path in sorted(self._mounts, key=len, reverse=True))
        self._pattern = (
            re.compile(rf"(?<![\w./-])({alternatives})((?:/[^\s:;,'\"]*)?)(?=$|[^\w.-])") if self._mounts else None
        )

    def rewrite(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        mount, rest = match.group(1), match.group(2)
        if rest.strip("/") and os.path.exists(mount + rest):
            return match.group(0)  # the machine's own path, under a mount point
        return str(self._mounts[mount]) + rest


def materialize(pod: dict[str, Any], *, root: pathlib.Path, refs: references.References) -> dict[str, pathlib.Path]:
    """Create and fill a local directory for every volume of ``pod`` under ``root``; map names to directories."""
    directories: dict[str, pathlib.Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        kind = next((kind for kind in SUPPORTED if kind in volume), None)
        if kind is None:
            raise errors.PodSpecError(
                f"volume {name!r}: {sorted(set(volume) - {'name'})} is not supported by the process-kubelet "
                f"(supported: {', '.join(SUPPORTED)})."
            )
        if kind == "hostPath":
            directories[name] = pathlib.Path(volume["hostPath"]["path"])
            continue
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        _fill(pod, volume, kind, directory, refs=refs)
        directories[name] = directory
    return directories


def container_mounts(container: dict[str, Any], volumes: Mapping[str, pathlib.Path]) -> PathMapper:
    """The path mapper of ``container``'s volumeMounts, given the volumes' local directories."""
    mounts: dict[str, pathlib.Path] = {}
    for mount in container.get("volumeMounts") or []:
        if mount.get("subPathExpr"):
            raise errors.PodSpecError(f"volumeMount {mount['name']!r}: subPathExpr is not supported.")
        if mount["name"] not in volumes:
            raise errors.PodSpecError(f"volumeMount {mount['name']!r} names no volume of the pod.")
        mounts[mount["mountPath"]] = volumes[mount["name"]] / mount.get("subPath", "")
    return PathMapper(mounts)


def _fill(
    pod: dict[str, Any], volume: dict[str, Any], kind: str, directory: pathlib.Path, *, refs: references.References
) -> None:
    """Fill ``directory`` for a volume of ``kind``; an emptyDir stays as it is: empty."""
    namespace = pod["metadata"]["namespace"]
    source = volume[kind]
    mode = source.get("defaultMode", DEFAULT_MODE)
    if kind == "secret":
        data = refs.secret(namespace, source["secretName"], optional=source.get("optional", False))
        _write_keys(directory, data, source.get("items"), mode=mode)
    elif kind == "configMap":
        data = refs.config_map(namespace, source["name"], optional=source.get("optional", False))
        _write_keys(directory, data, source.get("items"), mode=mode)
    elif kind == "downwardAPI":
        _write_downward(pod, directory, source.get("items") or [], mode=mode)
    elif kind == "projected":
        for projection in source.get("sources") or []:
            _fill_projection(pod, projection, directory, refs=refs, mode=mode)


def _fill_projection(
    pod: dict[str, Any],
    projection: dict[str, Any],
    directory: pathlib.Path,
    *,
    refs: references.References,
    mode: int,
) -> None:
    namespace = pod["metadata"]["namespace"]
    if "serviceAccountToken" in projection:
        request = projection["serviceAccountToken"]
        token = refs.service_account_token(
            pod, audience=request.get("audience"), expiration_seconds=request.get("expirationSeconds")
        )
        _write(directory / request["path"], token.encode(), mode=mode)
    elif "secret" in projection:
        ref = projection["secret"]
        data = refs.secret(namespace, ref["name"], optional=ref.get("optional", False))
        _write_keys(directory, data, ref.get("items"), mode=mode)
    elif "configMap" in projection:
        ref = projection["configMap"]
        data = refs.config_map(namespace, ref["name"], optional=ref.get("optional", False))
        _write_keys(directory, data, ref.get("items"), mode=mode)
    elif "downwardAPI" in projection:
        _write_downward(pod, directory, projection["downwardAPI"].get("items") or [], mode=mode)
    else:
        raise errors.PodSpecError(f"projected volume source {sorted(projection)} is not supported.")


def _write_keys(
    directory: pathlib.Path, data: dict[str, bytes] | None, items: list[dict[str, Any]] | None, *, mode: int
) -> None:
    if data is None:  # An optional, missing Secret or ConfigMap: an empty volume.
        return
    if not items:
        for key, value in data.items():
            _write(directory / key, value, mode=mode)
        return
    for item in items:
        if item["key"] not in data:
            raise errors.MissingReferenceError(f"no key {item['key']!r} for volume file {item['path']!r}")
        _write(directory / item["path"], data[item["key"]], mode=item.get("mode", mode))


def _write_downward(pod: dict[str, Any], directory: pathlib.Path, items: list[dict[str, Any]], *, mode: int) -> None:
    containers = {container["name"]: container for container in pod["spec"]["containers"]}
    for item in items:
        if "fieldRef" in item:
            value = podfields.field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            ref = item["resourceFieldRef"]
            container = containers[ref.get("containerName") or pod["spec"]["containers"][0]["name"]]
            value = podfields.resource_value(container, ref["resource"])
        _write(directory / item["path"], value.encode(), mode=item.get("mode", mode))


def _write(path: pathlib.Path, content: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    os.chmod(temporary, mode)
    temporary.replace(path)
