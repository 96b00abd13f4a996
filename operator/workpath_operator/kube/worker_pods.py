"""Worker pods, watched: a worker whose pod is gone or whose container terminated is lost at once.

Worker pods carry the ``workpath.dev/worker`` label (the chart's worker Deployment and every WorkerPool's pods),
and a worker's ID is its pod's name (``WORKPATH_WORKER_ID`` from ``metadata.name``). kopf hands
:meth:`WorkerPodWatch.observe` every watch event of such a pod in the namespaces the operator serves;
:func:`loss_of` reads from the pod whether its worker's process is gone, and why; the dispatcher then re-queues
the worker's runs at once (reason ``WorkerLost``, the cause in the message, an Event on each Routine), instead of
after the reconnect grace period or the missed heartbeats.

What counts as gone, and the races it has to get right:

- the pod was deleted (the kubelet confirmed its containers stopped, or someone force-deleted it), or it
  failed or completed as a whole (``Evicted``, a node-pressure eviction, among them);
- its worker container's current state is ``terminated`` (OOMKilled, an exit code, a signal);
- its container restarted since the last event (a higher ``restartCount``): the old process is gone, but a new
  one may already have connected with the same worker ID and hold runs of its own, so the worker is lost only if
  it is disconnected now.

A pod being deleted gracefully (``deletionTimestamp`` set, SIGTERM sent) is *not* a loss: its worker drains,
finishing or handing back its runs itself, and reports while it does. Only when its container has terminated, or
its pod is gone, is what it still holds re-queued. When such news comes while the worker's connection is still
open (the pod's status can be written before the operator reads the connection's close), the worker is lost the
moment that connection closes, unless a new connection of that worker ID comes first (see
:meth:`~workpath_operator.service.rostering.Roster.gone`).

A pod whose token bound the worker ID to it (the session's holder is ``pod:<uid>``) loses only its own worker: a
pod of the same name in another namespace, or a later one, does not.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Mapping
from typing import Any, Final

from workpath import directives
from workpath_operator.service import dispatching

logger = logging.getLogger("workpath.kubernetes")

Body = Mapping[str, Any]

WORKER_LABEL: Final = "workpath.dev/worker"
"""The label of every worker pod (value ``"true"``): the operator watches the pods that carry it."""
WORKER_LABELS: Final = {WORKER_LABEL: "true"}
CONTAINER: Final = "worker"
"""The worker's container in a worker pod; a pod without one is judged by its first container."""
_DONE_PHASES = frozenset({"Failed", "Succeeded"})


class WorkerPodWatch:
    """Tells the dispatcher of the workers whose pods say their process is gone; see the module's docstring."""

    def __init__(self, dispatcher: dispatching.Dispatcher) -> None:
        self._dispatcher = dispatcher
        #: The restart count last seen of each worker pod, by (namespace, name).
        self._restarts: dict[tuple[str, str], int] = {}

    def observe(self, event_type: str | None, body: Body) -> None:
        """A watch event of a worker pod (``None`` for the initial listing)."""
        metadata = body.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        container = _worker_container(body)
        restarts = int(container.get("restartCount") or 0)
        if event_type == "DELETED":
            seen = self._restarts.pop(key, None)
        else:
            seen = self._restarts.get(key)
            self._restarts[key] = restarts
        cause = loss_of(event_type, body, restarts_seen=seen)
        if cause is None:
            return
        worker_id = directives.WorkerID(key[1])
        session = self._dispatcher.sessions.get(worker_id)
        if session is None or not _held_by(session.holder, str(metadata.get("uid", ""))):
            return
        if cause.restarted and session.connected:
            return  # the new process may be the one connected, with runs of its own; its ready reconciles them
        if self._dispatcher.lose_worker(worker_id, reason=f"was lost: {cause.message}"):
            logger.warning("worker %s was lost: %s; its runs are queued again", worker_id, cause.message)


@dataclasses.dataclass(frozen=True, slots=True)
class Cause:
    """Why a worker pod's process is gone, and whether a new process of the pod runs already."""

    message: str
    restarted: bool = False


def loss_of(event_type: str | None, body: Body, *, restarts_seen: int | None) -> Cause | None:
    """Why the worker of this pod is gone, or None while its process may still run (even if it drains)."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    pod = f"pod {metadata.get('namespace')}/{metadata.get('name')}"
    container = _worker_container(body)
    state = container.get("state") or {}
    terminated = state.get("terminated")
    if event_type == "DELETED":
        detail = f" ({_ended(terminated)})" if terminated else ""
        return Cause(f"{pod} was Deleted{detail}")
    if status.get("phase") in _DONE_PHASES:
        if status.get("reason") == "Evicted":
            return Cause(f"{pod} was Evicted: {status.get('message') or 'no message'}")
        detail = f": {_ended(terminated)}" if terminated else ""
        return Cause(f"{pod} {status['phase']}{detail}")
    if terminated:
        return Cause(f"{pod}: its container {container.get('name', CONTAINER)} {_ended(terminated)}")
    restarts = int(container.get("restartCount") or 0)
    if restarts_seen is not None and restarts > restarts_seen:
        last = (container.get("lastState") or {}).get("terminated")
        how = _ended(last) if last else "ended"
        return Cause(f"{pod}: its container {container.get('name', CONTAINER)} {how} and restarted", restarted=True)
    return None


def _ended(terminated: Mapping[str, Any]) -> str:
    """How a container ended: ``OOMKilled (exit code 137)``, ``exited with code 1``, ``was killed by SIGKILL``."""
    reason = terminated.get("reason") or ""
    code = terminated.get("exitCode")
    signum = terminated.get("signal") or (code - 128 if isinstance(code, int) and 128 < code < 128 + 65 else None)
    if reason == "OOMKilled":
        return f"was OOMKilled (exit code {code})"
    if signum:
        return f"was killed by {_signal_name(signum)} (exit code {code})"
    extra = f", {reason}" if reason and reason not in {"Error", "Completed"} else ""
    return f"exited with code {code}{extra}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _worker_container(body: Body) -> Mapping[str, Any]:
    statuses = (body.get("status") or {}).get("containerStatuses") or []
    for container in statuses:
        if container.get("name") == CONTAINER:
            found: Mapping[str, Any] = container
            return found
    return statuses[0] if statuses else {}


def _held_by(holder: str | None, pod_uid: str) -> bool:
    """Whether a session may be this pod's worker: bound to no pod, or to this one."""
    return holder is None or not holder.startswith("pod:") or holder == f"pod:{pod_uid}"
