"""Readiness probes of a locally run container: httpGet and tcpSocket against 127.0.0.1."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

MAX_PERIOD = 1.0
"""Probe at least this often (seconds), whatever periodSeconds says: tests should not wait 10 s for readiness."""


def period(probe: dict[str, Any]) -> float:
    return float(min(probe.get("periodSeconds") or 10, MAX_PERIOD))


def initial_delay(probe: dict[str, Any]) -> float:
    return float(min(probe.get("initialDelaySeconds") or 0, MAX_PERIOD))


def succeeds(probe: dict[str, Any], container: dict[str, Any]) -> bool:
    """Whether the probe passes now. Exec probes (and any other kind) count as passing: they are not run."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "httpGet" in probe:
        action = probe["httpGet"]
        port = _port(action["port"], container)
        scheme = action.get("scheme", "HTTP").lower()
        path = action.get("path", "/")
        headers = {header["name"]: header["value"] for header in action.get("httpHeaders") or []}
        request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return bool(200 <= response.status < 400)
        except (urllib.error.URLError, OSError):
            return False
    if "tcpSocket" in probe:
        try:
            with socket.create_connection(("127.0.0.1", _port(probe["tcpSocket"]["port"], container)), timeout):
                return True
        except OSError:
            return False
    return True


def _port(port: int | str, container: dict[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or port.isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container {container['name']!r} has no port named {port!r}")
