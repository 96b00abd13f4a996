"""The API server's audit log, read back: which (verb, resource) pairs a ServiceAccount used.

The test control plane logs, at the ``Metadata`` level, every request made by a ServiceAccount (and nothing
else, to keep the log small). A test runs the operator under its chart's ServiceAccount, then compares what the
operator asked for with what the chart's RBAC grants, in both directions: a request the rules lack fails, and so
does a rule nothing used.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def write_policy(path: pathlib.Path) -> pathlib.Path:
    path.write_text(POLICY)
    return path


@dataclasses.dataclass(frozen=True, order=True)
class Permission:
    """One (API group, resource[/subresource], verb) an RBAC rule can grant."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


def events(log: pathlib.Path) -> Iterator[Mapping[str, Any]]:
    """The audit events in the log, oldest first (``ResponseComplete`` stage only)."""
    if not log.exists():
        return
    with log.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            if event.get("stage") == "ResponseComplete":
                yield event


def used(log: pathlib.Path, *, user: str, namespace: str | None = None) -> set[Permission]:
    """What ``user`` asked of the API (allowed or not), as permissions; ``namespace`` limits it to one namespace
    (cluster-scoped requests such as TokenReviews are kept)."""
    found: set[Permission] = set()
    for event in events(log):
        if event.get("user", {}).get("username") != user:
            continue
        ref = event.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery and other non-resource URLs
        if namespace is not None and ref.get("namespace") not in (None, namespace):
            continue
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        found.add(Permission(ref.get("apiGroup", ""), resource, event["verb"]))
    return found


def denied(log: pathlib.Path, *, user: str) -> list[str]:
    """The requests of ``user`` the API server refused with 403, as readable lines."""
    lines = []
    for event in events(log):
        if event.get("user", {}).get("username") == user and event.get("responseStatus", {}).get("code") == 403:
            ref = event.get("objectRef") or {}
            lines.append(f"{event['verb']} {ref.get('resource')}/{ref.get('subresource', '')} {event['requestURI']}")
    return lines


def granted(rules: Iterable[Mapping[str, Any]]) -> set[Permission]:
    """The permissions a list of RBAC ``rules`` grants (no wildcards: the chart lists them one by one)."""
    found: set[Permission] = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    if "*" in (group, resource, verb):
                        raise ValueError(f"a wildcard in an RBAC rule proves nothing: {dict(rule)}")
                    found.add(Permission(group, resource, verb))
    return found
