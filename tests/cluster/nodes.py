"""Node objects for the process-kubelet, kept Ready by a heartbeat (Lease renewals and the Ready condition).

Without a heartbeat, the node lifecycle controller marks a node Unknown after ~50 s and every pod on it not
Ready, then taints it and evicts the pods.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import kubernetes.client
import urllib3

from tests.cluster import podfields, rawapi, timestamps

logger = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
_LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
LABEL = "workpath.dev/process-kubelet"
"""Set to "true" on every node of a process-kubelet."""


class NodeHeartbeat:
    """Registers nodes, then renews their Leases and Ready conditions every ``interval`` seconds in a thread."""

    def __init__(self, api: rawapi.RawApi, names: tuple[str, ...], *, version: str, interval: float = 10.0) -> None:
        self.names = names
        self._api = api
        self._version = version
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, name="process-kubelet heartbeat", daemon=True)

    def register(self) -> dict[str, dict[str, str]]:
        """Create the nodes (or take over existing ones of the same names), mark them Ready; return their labels."""
        labels: dict[str, dict[str, str]] = {}
        for name in self.names:
            try:
                node = self._api.create("/api/v1/nodes", self._node(name))
            except kubernetes.client.ApiException as e:
                if e.status != 409:
                    raise
                node = self._api.get(f"/api/v1/nodes/{name}")
            labels[name] = node["metadata"].get("labels") or {}
        self.beat()
        return labels

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def deregister(self) -> None:
        """Delete the nodes and their Leases (best effort: the cluster may be going away too)."""
        for name in self.names:
            for path in (f"/api/v1/nodes/{name}", f"{_LEASES}/{name}"):
                try:
                    self._api.delete(path, timeout=5)
                except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as e:
                    logger.debug("process-kubelet: could not delete %s: %r", path, e)

    def beat(self) -> None:
        """Renew every node's Lease and Ready condition once."""
        moment = timestamps.now()
        for name in self.names:
            self._renew_lease(name, timestamps.micro(moment))
            conditions = _conditions(timestamps.rfc3339(moment), transitioned=False)
            self._api.patch(
                f"/api/v1/nodes/{name}/status",
                {"status": {"conditions": conditions}},
                content_type=rawapi.STRATEGIC_MERGE_PATCH,
            )

    def _beat_until_stopped(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.beat()
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as e:
                logger.warning("process-kubelet: heartbeat failed: %r", e)

    def _renew_lease(self, name: str, renew_time: str) -> None:
        try:
            self._api.patch(f"{_LEASES}/{name}", {"spec": {"renewTime": renew_time}})
        except kubernetes.client.ApiException as e:
            if e.status != 404:
                raise
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                    "renewTime": renew_time,
                },
            }
            self._api.create(_LEASES, lease)

    def _node(self, name: str) -> dict[str, Any]:
        resources = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki", "pods": "110"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    LABEL: "true",
                },
            },
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "addresses": [
                    {"type": "InternalIP", "address": podfields.POD_IP},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "kubeletVersion": self._version,
                    "containerRuntimeVersion": "process://local",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "process-kubelet",
                    "kernelVersion": os.uname().release,
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
                "conditions": _conditions(timestamps.rfc3339(timestamps.now()), transitioned=True),
            },
        }


def _conditions(now: str, *, transitioned: bool) -> list[dict[str, str]]:
    """A healthy node's conditions; a heartbeat leaves their lastTransitionTime alone (a merge keeps it)."""
    healthy = {
        "Ready": ("True", "KubeletReady", "process-kubelet is posting ready status"),
        "MemoryPressure": ("False", "KubeletHasSufficientMemory", "no memory pressure"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure", "no disk pressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID", "no PID pressure"),
    }
    return [
        {"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now}
        | ({"lastTransitionTime": now} if transitioned else {})
        for kind, (status, reason, message) in healthy.items()
    ]


def _memory_kib() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
