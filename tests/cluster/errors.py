"""The errors of the test control plane and the process-kubelet."""

from __future__ import annotations


class ClusterError(Exception):
    """The base of every error raised by ``tests.cluster``."""


class BinariesMissingError(ClusterError):
    """The control-plane binaries are not built (or not where the cache says)."""


class StartupError(ClusterError):
    """A control-plane process failed to start or to become ready; the message carries its log."""

    def __init__(self, message: str, *, port_conflict: bool = False) -> None:
        super().__init__(message)
        self.port_conflict = port_conflict


class WaitTimeoutError(ClusterError, TimeoutError):
    """A condition did not come true before its deadline."""


class PodSpecError(ClusterError):
    """A pod asks for something the process-kubelet cannot do; the pod stays Pending with this message."""

    reason = "CreateContainerConfigError"


class MissingReferenceError(PodSpecError):
    """A Secret, ConfigMap or ServiceAccount the pod refers to does not exist (yet); retried for a while."""
