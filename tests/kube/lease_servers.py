"""A Lease as the API server keeps it, in memory, for the leader election's unit tests: every write gets a new
resourceVersion, a write naming a stale one is refused with 409, a missing Lease is 404."""

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
    """One candidate's connection to the server; ``failing`` cuts it off (its requests fail as unreachable)."""

    def __init__(self, server: LeaseServer) -> None:
        self.server = server
        self.failing = False

    async def get_lease(self, namespace: str, name: str) -> clients.Body:
        self._check()
        return self.server.get()

    async def create_lease(self, namespace: str, body: clients.Body) -> clients.Body:
        self._check()
        return self.server.create(body)

    async def replace_lease(self, namespace: str, name: str, body: clients.Body) -> clients.Body:
        self._check()
        return self.server.replace(body)

    def _check(self) -> None:
        if self.failing:
            raise _error(0, "Unavailable")


def _error(status: int, reason: str) -> clients.ApiError:
    return clients.ApiError(status, reason, "from the fake", method="-", path="/leases")
