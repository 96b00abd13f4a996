"""The operator replicas' Lease as the tests see it: read once, or every change to it recorded with the time it was
seen (a watch, so that a holder that lasts a moment, such as a released Lease's empty one, is not missed)."""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
import types
from typing import Self

import kubernetes.client
import kubernetes.watch

NAME = "workpath-operator"


@dataclasses.dataclass(frozen=True)
class Seen:
    """The Lease's holder (empty: released) at ``at`` (``time.time()``)."""

    at: float
    holder: str
    transitions: int


def holder(client: kubernetes.client.ApiClient, namespace: str, name: str = NAME) -> str | None:
    """Who holds the Lease; None when there is no Lease, empty when nobody holds it."""
    try:
        lease = kubernetes.client.CoordinationV1Api(client).read_namespaced_lease(name, namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    assert lease.spec is not None
    return str(lease.spec.holder_identity or "")


def acquired_at(client: kubernetes.client.ApiClient, namespace: str, name: str = NAME) -> float:
    """When the holder took the Lease (its ``acquireTime``), as ``time.time()``."""
    lease = kubernetes.client.CoordinationV1Api(client).read_namespaced_lease(name, namespace)
    assert lease.spec is not None
    moment: datetime.datetime | None = lease.spec.acquire_time
    assert moment is not None, f"Lease {namespace}/{name} has no acquireTime"
    return moment.timestamp()


class LeaseWatch:
    """Records every change of the Lease from ``with`` to its end, in :attr:`seen`."""

    def __init__(self, client: kubernetes.client.ApiClient, namespace: str, name: str = NAME) -> None:
        self.seen: list[Seen] = []
        self._client = client
        self._namespace = namespace
        self._name = name
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-watch", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def first(self, holder: str, *, after: float) -> Seen | None:
        """The first change after ``after`` that left the Lease with ``holder``."""
        return next((seen for seen in list(self.seen) if seen.at > after and seen.holder == holder), None)

    def _run(self) -> None:
        api = kubernetes.client.CoordinationV1Api(self._client)
        version: dict[str, str] = {}  # resumes each short watch where the last one ended: no change is missed
        while not self._stopping.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            for event in watch.stream(  # type: ignore[no-untyped-call]
                api.list_namespaced_lease,
                self._namespace,
                field_selector=f"metadata.name={self._name}",
                timeout_seconds=1,
                **version,
            ):
                lease = event["object"]
                version = {"resource_version": lease.metadata.resource_version}
                spec = lease.spec
                self.seen.append(Seen(time.time(), str(spec.holder_identity or ""), int(spec.lease_transitions or 0)))
                if self._stopping.is_set():
                    watch.stop()  # type: ignore[no-untyped-call]
