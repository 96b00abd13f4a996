"""The runs API in operator mode: callers do with runs what Kubernetes RBAC lets them do with Routines.

:class:`RoutineAccess` is the :class:`~workpath_operator.service.http_api.Access` of the
operator's runs API:

- who calls: a Kubernetes token (TokenReview, for the ``workpath`` audience or the API
  server's own: ``reviewing.runs_api_authenticator``); the shared token, which is no
  Kubernetes identity, is refused there with the reason;
- what it may do: a SubjectAccessReview (``authorizing``) of the same verb on Routines in the
  namespace the request names (create to submit, get to read a run or its logs, delete to
  cancel; list in every namespace served for the workers' status);
- what a submitted run becomes: a Routine (``generateName`` from its routine ID), created by
  the operator with the caller's name in an annotation, and handed to the reconciler at once
  so that the answer already has its run; the watch event that follows finds it known. So it
  is durable, visible to kubectl and survives a restart like any Routine.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from workpath_operator.kube import authorizing, clients, resources
from workpath_operator.service import authenticating, http_api, runs

SUBMITTED_BY_ANNOTATION = "workpath.dev/submitted-by"
_NAME_STEM = 200


class RoutineAccess:
    """The runs API of the operator; see the module's docstring.

    ``namespaces`` are those served (empty: all); ``admit(body)`` hands a Routine just created to the reconciler.
    """

    def __init__(
        self,
        client: clients.KubernetesClient,
        *,
        authenticator: authenticating.Authenticator,
        reviewer: authorizing.SubjectAccessReviewer,
        namespaces: tuple[str, ...],
        admit: Callable[[clients.Body], object],
    ) -> None:
        self._client = client
        self._authenticator = authenticator
        self._reviewer = reviewer
        self._namespaces = namespaces
        self._admit = admit

    @property
    def authenticator(self) -> authenticating.Authenticator:
        return self._authenticator

    @property
    def namespaced(self) -> bool:
        return True

    async def authorize(
        self, identity: authenticating.Identity, *, verb: http_api.Verb, namespace: str | None
    ) -> str | None:
        if not identity.kubernetes:
            return (
                "the shared token lets workers connect; the runs API of the operator takes a Kubernetes token "
                "(kubectl's, or `kubectl create token ACCOUNT`) of a user whom RBAC allows to "
                f"{verb} Routines (routines.workpath.dev)" + (f" in namespace {namespace}" if namespace else "")
            )
        if namespace is not None and self._namespaces and namespace not in self._namespaces:
            return f"this operator serves Routines in {', '.join(self._namespaces)}, not in namespace {namespace}"
        for where in (namespace,) if namespace is not None else self._namespaces or ("",):
            decision = await self._reviewer.review(identity, verb=verb, namespace=where)
            if not decision.allowed:
                scope = f"in namespace {where}" if where else "in all namespaces"
                because = f": {decision.reason}" if decision.reason else ""
                return f"{identity.username} may not {verb} routines.workpath.dev {scope} (Kubernetes RBAC){because}"
        return None

    async def submit(
        self, spec: runs.RunSpec, *, namespace: str | None, identity: authenticating.Identity
    ) -> http_api.Submitted:
        assert namespace is not None, "the operator's runs API always has a namespace"
        try:
            created = await self._client.create_routine(namespace, routine_of(spec, namespace=namespace, by=identity))
        except clients.ApiError as exc:
            status = 400 if exc.status in {400, 409, 422} else 503
            raise http_api.SubmitError(status, f"the Routine could not be created: {exc.message or exc}") from None
        self._admit(created)
        return http_api.Submitted(resources.run_id_of(created), (namespace, str(created["metadata"]["name"])))


def routine_of(spec: runs.RunSpec, *, namespace: str, by: authenticating.Identity) -> clients.Body:
    """The Routine of a run submitted through the API: named after its routine ID, annotated with who asked."""
    return {
        "apiVersion": resources.API_VERSION,
        "kind": resources.KIND,
        "metadata": {
            "generateName": name_stem(spec.routine_id) + "-",
            "namespace": namespace,
            "annotations": {SUBMITTED_BY_ANNOTATION: by.username},
        },
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def name_stem(routine_id: str) -> str:
    """A routine ID made a valid start of a Routine's name (``reports.Yearly_sum`` -> ``reports.yearly-sum``)."""
    stem = re.sub(r"[^a-z0-9.-]+", "-", routine_id.lower())
    stem = re.sub(r"([.-])[.-]+", r"\1", stem)[:_NAME_STEM].strip(".-")
    return stem or "run"
