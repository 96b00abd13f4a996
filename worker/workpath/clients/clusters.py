"""The cluster target: runs are Routines created with the Kubernetes API server, their status watched.

:class:`ClusterTarget` needs no URL of workpath's own: the client's Kubernetes credentials (a kubeconfig, or the
pod's ServiceAccount) and RBAC on Routines in its namespace (create to submit; list and watch to await; get to read;
delete to cancel). The operator runs the Routines it creates as any other; kubectl shows them.

- submitting creates a Routine per run (``generateName`` from the routine ID, the client's labels and annotations,
  ``fieldManager=workpath-client``), at most ``concurrency`` requests at once; the run ID is the Routine's uid;
- awaiting: one watch per client (:mod:`~.watching`) resolves every run awaited;
- cancelling deletes the Routine (the operator cancels its run and sub-routines; a finished run is left as it
  ended); a run awaited whose Routine is deleted raises :class:`~workpath.errors.RunCancelledError`;
- log lines are kept by the operator's service, not in the Routine: they are read from its runs API when
  ``service_url`` is given, with the same credentials' token; otherwise :meth:`ClusterTarget.logs` says so.

A run is found by its run ID or by its Routine's name (``Client.get("reports.build-x7k2p")``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any

import aiohttp

from workpath import directives, errors
from workpath.clients import apiservers, frames, resources, streaming, targets, watching

Body = dict[str, Any]

#: Routines created at once by one ``submit``.
CONCURRENCY = 32
#: Routine names remembered per run ID submitted here (others are found by listing).
_NAMES = 65536
_VERBS = "create, get, list, watch and delete"


class ClusterTarget:
    """Routines in ``namespace`` (None: the kubeconfig context's, or the pod's); see the module.

    ``kubeconfig``/``context``: which credentials (default: in a pod its ServiceAccount, else ``$KUBECONFIG`` or
    ``~/.kube/config`` and its current context). ``labels``/``annotations`` go on every Routine created.
    ``service_url``: the operator's directive service, for log lines. ``watch_seconds``: how long each watch
    request lasts before it is resumed.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        service_url: str | None = None,
        concurrency: int = CONCURRENCY,
        watch_seconds: int = watching.WATCH_SECONDS,
    ) -> None:
        apiservers.kubernetes()  # fail now, naming the extra, rather than at open()
        self.namespace = namespace
        self._kubeconfig = kubeconfig
        self._context = context
        self._labels = dict(labels or {})
        self._annotations = dict(annotations or {})
        self._service_url = service_url.rstrip("/") if service_url else None
        self._concurrency = max(1, concurrency)
        self._watch_seconds = watch_seconds
        self._api: apiservers.ApiServer | None = None
        self._watch: watching.RoutineWatch | None = None
        self._names: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lookups: set[asyncio.Task[None]] = set()
        self._deletions: set[asyncio.Task[frames.Status]] = set()

    @property
    def watch(self) -> watching.RoutineWatch:
        """The watch that resolves the runs awaited."""
        assert self._watch is not None, "open() the target first"
        return self._watch

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        credentials = await apiservers.load(kubeconfig=self._kubeconfig, context=self._context)
        self.namespace = self.namespace or credentials.namespace
        api = apiservers.ApiServer(credentials)
        await api.open()
        try:
            await api.request("GET", resources.API)  # the credentials work, and the cluster has Routines
        except apiservers.ApiError as exc:
            await api.close()
            if exc.status == 404:
                raise errors.ClientError(
                    f"the cluster at {credentials.server} ({credentials.source}) has no Routines "
                    f"({resources.RESOURCE}): install workpath there (its chart installs the CRDs), or use another "
                    "context"
                ) from None
            raise self._explained(exc, "reach", credentials=credentials) from None
        self._api = api
        self._watch = watching.RoutineWatch(
            api, self.namespace, refused=lambda exc: self._explained(exc, "list and watch"), seconds=self._watch_seconds
        )

    async def close(self) -> None:
        """Stop watching (the runs go on); cancels already asked for are finished first."""
        if self._deletions:
            await asyncio.wait(self._deletions)
        for task in list(self._lookups):
            task.cancel()
        for task in list(self._lookups):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._watch is not None:
            await self._watch.close()
            self._watch = None
        if self._api is not None:
            await self._api.close()
            self._api = None

    # ------------------------------------------------------------------ requests

    async def submit(self, specs: Sequence[frames.RunSpec]) -> list[targets.Ticket]:
        api, watch = self._open()
        path = resources.routines_path(self.namespace or "")
        query = {"fieldManager": resources.FIELD_MANAGER}
        answers: list[targets.Ticket | apiservers.ApiError | None] = [None] * len(specs)
        positions = iter(range(len(specs)))
        refused: list[apiservers.ApiError] = []

        async def creating() -> None:
            for index in positions:
                if refused:  # the API server refused the credentials or RBAC: the others would be refused too
                    return
                body = resources.routine_of(specs[index], labels=self._labels, annotations=self._annotations)
                try:
                    created = await api.request("POST", path, body=body, query=query)
                except apiservers.ApiError as exc:
                    answers[index] = exc
                    if exc.status in (0, 401, 403):
                        refused.append(exc)
                    continue
                answers[index] = self._ticket(created, watch)

        await asyncio.gather(*(creating() for _ in range(min(self._concurrency, len(specs)))))
        if refused and not any(isinstance(answer, targets.Ticket) for answer in answers):
            raise self._explained(refused[0], "create")
        return [self._refusal(answer) if not isinstance(answer, targets.Ticket) else answer for answer in answers]

    def _ticket(self, created: Body, watch: watching.RoutineWatch) -> targets.Ticket:
        """The ticket of a Routine just created, its outcome awaited at once (so the watch misses nothing)."""
        run_id = resources.run_id_of(created)
        self._remember(run_id, created["metadata"]["name"])
        outcome: asyncio.Future[frames.Outcome] = asyncio.get_running_loop().create_future()
        watch.attach(run_id, outcome)
        return targets.Ticket(run_id=run_id, outcome=outcome, routine=resources.ref_of(created))

    def _refusal(self, answer: apiservers.ApiError | None) -> targets.Ticket:
        if answer is None:
            error = directives.ErrorInfo(
                type=frames.ErrorType.NOT_SUBMITTED, message="not submitted: an earlier Routine was refused"
            )
        elif answer.status in (0, 401, 403):
            error = directives.ErrorInfo(
                type=frames.ErrorType.NOT_SUBMITTED, message=str(self._explained(answer, "create"))
            )
        else:
            kind = frames.ErrorType.PARAMS_TOO_LARGE if answer.status == 413 else answer.reason or "Invalid"
            error = directives.ErrorInfo(type=kind, message=f"the Routine could not be created: {answer.message}")
        return targets.Ticket(run_id=None, outcome=None, refusal=error)

    def follow(self, run_id: directives.RunID) -> asyncio.Future[frames.Outcome]:
        self._open()
        future: asyncio.Future[frames.Outcome] = asyncio.get_running_loop().create_future()
        self._spawn(self._follow(run_id, future))
        return future

    async def _follow(self, key: str, future: asyncio.Future[frames.Outcome]) -> None:
        """Read the Routine: its outcome if it has one, else the watch's (which sees what happens after)."""
        try:
            body = await self._find(key)
        except errors.ClientError as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()
            return
        outcome = resources.outcome_of(body)
        if outcome is not None:
            if not future.done():
                future.set_result(outcome)
        else:
            self.watch.attach(resources.run_id_of(body), future)

    async def read(self, run_id: directives.RunID) -> frames.Status:
        body = await self._find(run_id)
        return frames.Status(request_id=0, status=resources.status_of(body), routine=resources.ref_of(body))

    def cancel(self, run_id: directives.RunID, *, reason: str) -> asyncio.Future[frames.Status]:
        self._open()
        task = asyncio.create_task(self._delete(run_id, reason=reason), name=f"workpath-client-cancel-{run_id}")
        self._deletions.add(task)
        task.add_done_callback(self._deletions.discard)
        return task

    async def _delete(self, key: str, *, reason: str) -> frames.Status:
        """Delete the Routine unless its run has finished; its status, marked Cancelled with ``reason``."""
        api, _ = self._open()
        body = await self._find(key)
        if resources.phase_of(body).finished:
            return frames.Status(request_id=0, status=resources.status_of(body), routine=resources.ref_of(body))
        metadata = body["metadata"]
        options = {"preconditions": {"uid": metadata["uid"]}, "propagationPolicy": "Background"}
        try:
            answer = await api.request(
                "DELETE", resources.routine_path(metadata["namespace"], metadata["name"]), body=options
            )
        except apiservers.ApiError as exc:
            if exc.status in (404, 409):  # gone already, or replaced by another of its name
                raise errors.RunNotFoundError(f"the Routine {resources.where(body)} is gone") from None
            raise self._explained(exc, "delete") from None
        last = answer if answer.get("kind") == resources.KIND else body
        status = resources.status_of(last)
        if not status.phase.finished:
            status = status.model_copy(
                update={
                    "phase": frames.Phase.CANCELLED,
                    "reason": "Deleted",
                    "message": f"the Routine was deleted: {reason}",
                }
            )
        return frames.Status(request_id=0, status=status, routine=resources.ref_of(body))

    async def logs(self, run_id: directives.RunID, *, follow: bool) -> AsyncIterator[directives.Log]:
        if self._service_url is None:
            raise errors.ClientError(
                f"the log lines of run {run_id} are kept by the operator's directive service, not in its Routine: "
                "give service_url= (e.g. http://127.0.0.1:7740 after 'kubectl -n workpath port-forward svc/workpath "
                "7740'); its worker also printed them to its stdout (kubectl logs POD, the Routine's status.worker)"
            )
        body = await self._find(run_id)
        api, _ = self._open()
        header = await api.credentials.authorization()
        if header is None or not header.startswith("Bearer "):
            raise errors.ClientError(
                f"the operator's service checks bearer tokens with the API server, and your credentials "
                f"({api.credentials.source}) have none: use a kubeconfig user with a token (kubectl create token NAME)"
            )
        async with aiohttp.ClientSession(headers={"Authorization": header}) as http:
            lines = streaming.read_logs(
                http, self._service_url, resources.run_id_of(body), namespace=self.namespace, follow=follow
            )
            async for line in lines:
                yield line

    # ------------------------------------------------------------------ finding Routines

    async def _find(self, key: str) -> Body:
        """The Routine of run ``key`` (a run ID), or named ``key``; :class:`~workpath.errors.RunNotFoundError`."""
        api, _ = self._open()
        namespace = self.namespace or ""
        name = self._names.get(key) or (None if resources.is_run_id(key) else key)
        if name is not None:
            try:
                return await api.request("GET", resources.routine_path(namespace, name))
            except apiservers.ApiError as exc:
                if exc.status != 404:
                    raise self._explained(exc, "get") from None
                raise errors.RunNotFoundError(f"no Routine {name} in namespace {namespace} (any more)") from None
        for selector in (f"{resources.RUN_ID_LABEL}={key}", None):  # a child's run ID is a label, a top-level's its uid
            for body in await self._listed(selector):
                if resources.run_id_of(body) == key:
                    self._remember(key, body["metadata"]["name"])
                    return body
        raise errors.RunNotFoundError(f"no Routine of run {key} in namespace {namespace} (any more)")

    async def _listed(self, selector: str | None) -> list[Body]:
        api, _ = self._open()
        query = {"labelSelector": selector} if selector else {}
        try:
            listing = await api.request("GET", resources.routines_path(self.namespace or ""), query=query)
        except apiservers.ApiError as exc:
            raise self._explained(exc, "list") from None
        items: list[Body] = listing.get("items") or []
        return items

    def _remember(self, run_id: str, name: str) -> None:
        names = self._names
        names[run_id] = name
        if len(names) > _NAMES:
            names.popitem(last=False)

    # ------------------------------------------------------------------ helpers

    def _open(self) -> tuple[apiservers.ApiServer, watching.RoutineWatch]:
        if self._api is None or self._watch is None:
            raise errors.ClientError("the client is not open: use 'async with client:' or 'await client.open()'")
        return self._api, self._watch

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="workpath-client-lookup")
        self._lookups.add(task)
        task.add_done_callback(self._lookups.discard)

    def _explained(
        self, exc: apiservers.ApiError, verb: str = "use", *, credentials: apiservers.Credentials | None = None
    ) -> errors.ClientError:
        """What the API server's refusal means for the user, and what to fix."""
        credentials = credentials or (self._api.credentials if self._api is not None else None)
        server = credentials.server if credentials is not None else "?"
        source = credentials.source if credentials is not None else "?"
        if exc.status == 401:
            return errors.ClientAuthenticationError(
                f"the API server at {server} refused the credentials of {source} (401 {exc.reason}): check its user's "
                "token or certificate (kubectl auth whoami)"
            )
        if exc.status == 403:
            return errors.ClientAuthenticationError(
                f"Kubernetes RBAC does not let you {verb} {resources.RESOURCE} in namespace {self.namespace}: "
                f"{exc.message}; the cluster target needs a Role there granting {_VERBS} on routines in API group "
                f"{resources.GROUP} (check with: kubectl auth can-i {verb.split()[0]} {resources.RESOURCE} "
                f"-n {self.namespace})"
            )
        if exc.status == 0:
            return errors.ClientError(
                f"cannot reach the Kubernetes API server at {server} ({source}): {exc.message}; check the kubeconfig "
                "and that the cluster runs"
            )
        return errors.ClientError(f"the API server refused to {verb} {resources.RESOURCE}: {exc}")
