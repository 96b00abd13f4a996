"""Routine resources in the operator tests: create, read, and wait for their status (with deadlines)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any, cast

import kubernetes.client

from tests.cluster import manifests, waiting

FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
#: RFC 3339 in UTC with microseconds, as the operator writes every timestamp.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def api(client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(client)


def create(client: kubernetes.client.ApiClient, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body = api(client).create_namespaced_custom_object(
        manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, manifests.routine(name, **spec)
    )
    return cast(dict[str, Any], body)


def get(client: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        body = cast(
            dict[str, Any],
            api(client).get_namespaced_custom_object(
                manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, name
            ),
        )
    except kubernetes.client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return body


def listed(client: kubernetes.client.ApiClient, namespace: str, *, selector: str = "") -> list[dict[str, Any]]:
    answer = cast(
        dict[str, Any],
        api(client).list_namespaced_custom_object(
            manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, label_selector=selector
        ),
    )
    items: list[dict[str, Any]] = answer["items"]
    return items


def delete(client: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    api(client).delete_namespaced_custom_object(manifests.GROUP, manifests.VERSION, namespace, manifests.ROUTINES, name)


def wait_for(
    client: kubernetes.client.ApiClient,
    namespace: str,
    name: str,
    condition: Callable[[dict[str, Any]], bool],
    *,
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The Routine once ``condition(routine)`` holds."""

    def check() -> dict[str, Any] | None:
        routine = get(client, namespace, name)
        return routine if routine is not None and condition(routine) else None

    return waiting.wait_for(check, timeout=timeout, what=f"Routine {namespace}/{name} {what}")


def wait_for_phase(
    client: kubernetes.client.ApiClient, namespace: str, name: str, *phases: str, timeout: float = 60.0
) -> dict[str, Any]:
    return wait_for(
        client, namespace, name, lambda r: phase(r) in phases, what=f"to be {' or '.join(phases)}", timeout=timeout
    )


def wait_until_gone(client: kubernetes.client.ApiClient, namespace: str, name: str, *, timeout: float = 30.0) -> None:
    waiting.wait_for(
        lambda: get(client, namespace, name) is None, timeout=timeout, what=f"Routine {namespace}/{name} to be gone"
    )


def phase(routine: dict[str, Any]) -> str | None:
    return (routine.get("status") or {}).get("phase")


def condition(routine: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in (routine.get("status") or {}).get("conditions") or []:
        if entry["type"] == kind:
            found: dict[str, Any] = entry
            return found
    raise AssertionError(f"no {kind} condition in {routine.get('status')}")


def moment(text: str) -> datetime.datetime:
    assert TIMESTAMP.match(text), f"{text!r} is not RFC 3339 UTC with microseconds"
    return datetime.datetime.fromisoformat(text)


def events(client: kubernetes.client.ApiClient, namespace: str, name: str) -> list[str]:
    """The reasons of the Events about Routine ``name``, in the order they were stored."""
    found = kubernetes.client.CoreV1Api(client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Routine,involvedObject.name={name}"
    )
    return [_reason(event) for event in sorted(found.items, key=_resource_version)]


def _reason(event: kubernetes.client.CoreV1Event) -> str:
    assert event.reason is not None, f"an Event without a reason: {event}"
    return event.reason


def _resource_version(event: kubernetes.client.CoreV1Event) -> int:
    assert event.metadata is not None and event.metadata.resource_version is not None
    return int(event.metadata.resource_version)


def wait_for_events(
    client: kubernetes.client.ApiClient, namespace: str, name: str, *reasons: str, timeout: float = 30.0
) -> list[str]:
    """The reasons of the Routine's Events once they include ``reasons`` (Events are posted after the status)."""

    def included() -> list[str] | None:
        found = events(client, namespace, name)
        return found if found and set(reasons) <= set(found) else None

    return waiting.wait_for(
        included,
        timeout=timeout,
        what=f"Events {', '.join(reasons)} on Routine {namespace}/{name}",
    )
