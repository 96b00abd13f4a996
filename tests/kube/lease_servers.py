"""A Lease as the API server keeps it, in memory, for the leader election's unit tests: every write gets a new
resourceVersion, a write naming a stale one is refused with 409, a missing Lease is 404. Beside it, the candidates'
pods' labels and annotations, changed by JSON merge patches."""

from __future__ import annotations

import copy
from typing import Any

from workpath_operator.kube import clients


class LeaseServer:
    """One Lease as the API server keeps it: every write gets a new resourceVersion; a stale one is refused."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes: list[dict[str, Any]] = []
        #: The pods' metadata (labels, annotations) by pod name; a patch of a missing pod is 404.
        self.pods: dict[str, dict[str, dict[str, str]]] = {}
        #: Pod patches refused with this status (403: RBAC said no), when set.
        self.pod_refusal: int | None = None

    def add_pod(self, name: str, *, labels: dict[str, str] | None = None) -> None:
        self.pods[name] = {"labels": dict(labels or {}), "annotations": {}}

    def labels(self, name: str) -> dict[str, str]:
        return dict(self.pods[name]["labels"])

    def patch_pod(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if self.pod_refusal is not None:
            raise _error(self.pod_refusal, "Refused")
        if name not in self.pods:
            raise _error(404, "NotFound")
        for key, changes in (patch.get("metadata") or {}).items():
            kept = self.pods[name][key]
            for field, value in changes.items():
                if value is None:
                    kept.pop(field, None)
                else:
                    kept[field] = value
        return {"metadata": {"name": name} | copy.deepcopy(self.pods[name])}

    def get(self) -> dict[str, Any]:
        if self.lease is None:
            raise _error(404, "NotFound")
        return copy.deepcopy(self.lease)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise _error(409, "AlreadyExists")
        return self._store(body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is None:
            raise _error(404, "NotFound")
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise _error(409, "Conflict")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        self.writes.append(copy.deepcopy(self.lease))
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str | None:
        return None if self.lease is None else self.lease["spec"].get("holderIdentity")


class Client:
    """One candidate's connection to the server; ``failing`` cuts it off (its requests fail as unreachable), and
    ``pods_failing`` its pod patches only."""

    def __init__(self, server: LeaseServer) -> None:
        self.server = server
        self.failing = False
        self.pods_failing = False

    async def get_lease(self, namespace: str, name: str) -> clients.Body:
        self._check()
        return self.server.get()

    async def create_lease(self, namespace: str, body: clients.Body) -> clients.Body:
        self._check()
        return self.server.create(body)

    async def replace_lease(self, namespace: str, name: str, body: clients.Body) -> clients.Body:
        self._check()
        return self.server.replace(body)

    async def patch_pod(self, namespace: str, name: str, patch: clients.Body) -> clients.Body:
        self._check()
        if self.pods_failing:
            raise _error(503, "ServiceUnavailable")
        return self.server.patch_pod(name, patch)

    def _check(self) -> None:
        if self.failing:
            raise _error(0, "Unavailable")


def _error(status: int, reason: str) -> clients.ApiError:
    return clients.ApiError(status, reason, "from the fake", method="-", path="/leases")
