"""Kubernetes RBAC, asked: may this user do that with Routines in that namespace? (SubjectAccessReview)

The runs API lets a caller do with runs only what Kubernetes RBAC lets it do with Routines.
:class:`SubjectAccessReviewer` asks the API server with a SubjectAccessReview made of the
caller's identity as TokenReview gave it (user, UID, groups, extra) and the request's
resource attributes, and remembers each answer, yes or no, for a few seconds (as the API
server's own webhook authorizer does), keyed by all of those, in a bounded cache; concurrent
requests asking the same share one review. So a burst of calls by one caller costs one review,
and a role granted or revoked counts within ``cache_seconds``. A failure to ask is a refusal,
not remembered.
"""

from __future__ import annotations

import dataclasses
import logging

from workpath_operator.kube import clients, remembering, resources
from workpath_operator.service import authenticating

logger = logging.getLogger("workpath.auth")

#: A question: the user (name, UID, groups, extra) and what it would do (verb, group, resource, namespace).
Question = tuple[str, str, tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...], str, str, str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The API server's answer: allowed or not, and its reason (often empty when allowed)."""

    allowed: bool
    reason: str = ""


class SubjectAccessReviewer:
    """Asks Kubernetes RBAC about a user and remembers the answers briefly; see the module's docstring."""

    def __init__(self, client: clients.KubernetesClient, *, cache_seconds: float = 5.0, cache_size: int = 4096) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._memo: remembering.Memo[Question, Decision] = remembering.Memo(
            size=cache_size, name="subject-access-review"
        )

    @property
    def memo(self) -> remembering.Memo[Question, Decision]:
        """The remembered answers (their hits and misses count the reviews saved and asked)."""
        return self._memo

    async def review(
        self,
        identity: authenticating.Identity,
        *,
        verb: str,
        namespace: str,
        group: str = resources.GROUP,
        resource: str = resources.PLURAL,
    ) -> Decision:
        """Whether ``identity`` may ``verb`` the ``resource`` of ``group`` in ``namespace`` ("": cluster-wide)."""
        question: Question = (
            identity.username,
            identity.uid,
            identity.groups,
            tuple(sorted(identity.extra.items())),
            verb,
            group,
            resource,
            namespace,
        )
        return await self._memo.get(question, lambda: self._ask(question))

    async def _ask(self, question: Question) -> tuple[Decision, float]:
        username, uid, groups, extra, verb, group, resource, namespace = question
        spec: clients.Body = {
            "user": username,
            "groups": list(groups),
            "extra": {key: list(values) for key, values in extra},
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": namespace},
        }
        if uid:
            spec["uid"] = uid
        try:
            status = await self._client.review_access(spec)
        except clients.ApiError as exc:
            logger.error("cannot ask Kubernetes whether %s may %s %s, so it may not: %s", username, verb, resource, exc)
            return Decision(False, f"the operator could not ask the API server ({exc.status} {exc.reason})"), 0.0
        decision = Decision(bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason") or ""))
        return decision, self._cache_seconds
