"""``workpath.Client``: run routines from any Python program, and await their results.

::

    async with workpath.Client.local() as client:            # the service 'workpath dev' runs here
        total = await client.run("reports.build", month="2024-05")
        handle = await client.submit("reports.build", month="2024-06")
        async for line in handle.logs(follow=True):
            print(line.message)
        handles = await client.submit_many(workpath.RunSpec(routine_id="reports.part", params={"n": n})
                                           for n in range(1000))
        parts = await asyncio.gather(*handles)

A failed run raises :class:`~workpath.errors.RunFailedError` (a cancelled one :class:`~workpath.errors.
RunCancelledError`) with the remote error's type and message. Awaiting is shielded: cancelling (or timing out,
``asyncio.timeout``) the task that awaits a run stops the waiting, not the run, unless ``cancel_on_abandon``.
Runs outlive the client: another client awaits one by its run ID (:meth:`Client.get`).

On a Kubernetes cluster, runs are Routines the client creates and watches with the API server::

    async with workpath.Client.for_cluster("reports", labels={"team": "finance"}) as client:
        total = await client.run("reports.build", month="2024-05")   # a Routine reports.build-xxxxx, watched
"""

from __future__ import annotations

import asyncio
import os
import pathlib
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from typing import Any, Self

from workpath import directives, errors, routines
from workpath.clients import clusters, frames, streaming, targets

#: The reason a run gets when the client that waited for it asked to cancel what it abandons.
ABANDONED = "the client stopped waiting (cancel_on_abandon)"


class Client:
    """A connection to where routines run (a :class:`~workpath.clients.targets.Target`); see the module.

    Build one with :meth:`local`, :meth:`for_service` or :meth:`for_cluster`, then ``async with client:`` (or
    :meth:`open` and :meth:`close`). One client serves any number of concurrent tasks.
    """

    def __init__(self, target: targets.Target) -> None:
        self.target = target

    @classmethod
    def local(
        cls, url: str | None = None, *, token: str | None = None, state_file: pathlib.Path = targets.STATE_FILE
    ) -> Client:
        """The local service: ``url``/``token`` as given, else ``$WORKPATH_API_URL``/``$WORKPATH_TOKEN``, else
        those ``workpath dev`` wrote to ``.workpath/dev.json`` here (as ``workpath run`` finds them)."""
        return cls(streaming.ServiceTarget(targets.locate(url, token=token, state_file=state_file)))

    @classmethod
    def for_service(cls, url: str, *, token: str, namespace: str | None = None) -> Client:
        """The directive service at ``url`` (``http://host:port``). The operator's wants a ``namespace`` and a
        Kubernetes token (kubectl's, or ``kubectl create token``) that RBAC lets use Routines there."""
        location = targets.Location(url=url.rstrip("/"), token=token, url_from="url=", token_from="token=")
        return cls(streaming.ServiceTarget(location, namespace=namespace))

    @classmethod
    def for_cluster(
        cls,
        namespace: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        service_url: str | None = None,
    ) -> Client:
        """A Kubernetes cluster: runs are Routines in ``namespace`` (default: the context's, or the pod's), created
        and watched with the API server as the kubeconfig's user (``kubeconfig``, ``context``; default
        ``$KUBECONFIG`` or ``~/.kube/config``), or the pod's ServiceAccount in a pod. RBAC on Routines there decides
        what it may do. ``labels`` and ``annotations`` go on every Routine it creates; ``service_url`` (the
        operator's directive service) is where log lines are read. Needs ``pip install 'workpath[cluster]'``."""
        target = clusters.ClusterTarget(
            namespace,
            kubeconfig=kubeconfig,
            context=context,
            labels=labels,
            annotations=annotations,
            service_url=service_url,
        )
        return cls(target)

    async def open(self) -> None:
        """Connect; :class:`~workpath.errors.ClientError` says what to fix when it cannot (URL, token)."""
        await self.target.open()

    async def close(self) -> None:
        """Disconnect; the runs go on."""
        await self.target.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ submitting

    async def run(self, routine: str | routines.RoutineDefinition[..., Any], /, **params: Any) -> Any:
        """Run ``routine`` with ``params`` and return its result; see :meth:`run_with` for options."""
        return await (await self.submit_with(routine, params))

    async def run_with(
        self,
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        cancel_on_abandon: bool = False,
        **options: Any,
    ) -> Any:
        """Like :meth:`run`: ``timeout`` bounds the wait (TimeoutError; the run goes on unless
        ``cancel_on_abandon``); ``options`` are :meth:`spec`'s."""
        handle = await self.submit_with(routine, params, **options)
        return await handle.result(timeout=timeout, cancel_on_abandon=cancel_on_abandon)

    async def submit(self, routine: str | routines.RoutineDefinition[..., Any], /, **params: Any) -> RunHandle:
        """Start a run of ``routine`` with ``params``; its handle, once the service has accepted it."""
        return await self.submit_with(routine, params)

    async def submit_with(
        self,
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        **options: Any,
    ) -> RunHandle:
        """Like :meth:`submit`, with :meth:`spec`'s options (``timeout_seconds``, ``retries``, ``pool``...)."""
        (handle,) = await self.submit_many([self.spec(routine, params, **options)])
        return handle

    async def submit_many(self, specs: Iterable[frames.RunSpec]) -> list[RunHandle]:
        """Start many runs at once (streamed in large frames); their handles, in order.

        If the service refuses some (params over its limit...), the others still run and
        :class:`~workpath.errors.SubmissionError` is raised for the first refused, with every handle in
        ``accepted`` (None for the refused).
        """
        specs = specs if isinstance(specs, list) else list(specs)
        tickets = await self.target.submit(specs)
        handles: list[RunHandle | None] = []
        refused: tuple[int, directives.ErrorInfo] | None = None
        for index, (spec, ticket) in enumerate(zip(specs, tickets, strict=True)):
            if ticket.run_id is None:
                handles.append(None)
                if refused is None and ticket.refusal is not None:
                    refused = (index, ticket.refusal)
                continue
            handles.append(RunHandle(self.target, ticket.run_id, spec.routine_id, ticket.outcome, ticket.routine))
        if refused is not None:
            index, error = refused
            raise errors.SubmissionError(
                f"run {index} ({specs[index].routine_id}) was refused: {error.message}",
                type=error.type,
                accepted=handles,
            )
        return [handle for handle in handles if handle is not None]

    async def results(self, handles: Iterable[RunHandle], *, return_exceptions: bool = False) -> list[Any]:
        """The results of many runs, in order, once all have ended: as ``asyncio.gather(*handles)``, without a
        task per handle (so at the client's full speed). The first failure (in order) is raised, once all have
        ended, unless ``return_exceptions``. Cancelling the caller stops the waiting, not the runs."""
        handles = list(handles)
        outcomes = [handle.outcome() for handle in handles]
        pending = [outcome for outcome in outcomes if not outcome.done()]
        if pending:
            await _all_done(pending)
        values: list[Any] = []
        for handle, outcome in zip(handles, outcomes, strict=True):
            try:
                values.append(handle.unwrap(outcome.result()))
            except (errors.RunFailedError, errors.ClientError) as exc:
                if not return_exceptions:
                    raise
                values.append(exc)
        return values

    def get(self, run_id: str) -> RunHandle:
        """The handle of a run submitted before (by this client or another): await it, read it, cancel it."""
        return RunHandle(self.target, directives.RunID(run_id), None, None, None)

    @staticmethod
    def spec(
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout_seconds: float | None = None,
        retries: int = 0,
        backoff_seconds: float = 5.0,
        pool: str | None = None,
        priority: int = 0,
        ttl_seconds_after_finished: int | None = None,
    ) -> frames.RunSpec:
        """A run spec for :meth:`submit_many`: ``timeout_seconds`` per attempt, ``retries`` of a retryable
        failure ``backoff_seconds`` apart (doubling), only workers of ``pool``, higher ``priority`` first."""
        routine_id = routine.id if isinstance(routine, routines.RoutineDefinition) else routine
        return frames.RunSpec(
            routine_id=directives.RoutineID(routine_id),
            params=dict(params) if params else {},
            timeout_seconds=timeout_seconds,
            retries=frames.Retries(limit=retries, backoff_seconds=backoff_seconds),
            pool=pool,
            priority=priority,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
        )


class RunHandle:
    """A run started (or found by ID): await it for its result, read its status, cancel it, read its logs."""

    def __init__(
        self,
        target: targets.Target,
        run_id: directives.RunID,
        routine_id: str | None,
        outcome: asyncio.Future[frames.Outcome] | None,
        routine: frames.RoutineRef | None,
    ) -> None:
        self.run_id = run_id
        #: The routine ID (None for a handle found by run ID, until it failed).
        self.routine_id = routine_id
        #: The Routine the run is (operator mode): its namespace and name.
        self.routine = routine
        self._target = target
        self._outcome = outcome

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id} of {self.routine_id or '?'}>"

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    def done(self) -> bool:
        """Whether the outcome is known here (without asking)."""
        return self._outcome is not None and self._outcome.done()

    async def result(self, *, timeout: float | None = None, cancel_on_abandon: bool = False) -> Any:
        """The run's result, once it ends; :class:`~workpath.errors.RunFailedError` if it failed.

        ``timeout`` (seconds) raises TimeoutError, as ``asyncio.timeout`` around it does. Either way, and when
        the awaiting task is cancelled, the run goes on, unless ``cancel_on_abandon``; other tasks awaiting the
        same handle go on waiting.
        """
        outcome = self.outcome()
        if not outcome.done():
            waiter = _waiter(outcome)  # this await's own future: cancelling it leaves the outcome to others
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except (asyncio.CancelledError, TimeoutError):
                if cancel_on_abandon and not outcome.done():
                    self._target.cancel(self.run_id, reason=ABANDONED).add_done_callback(_ignore)
                raise
        return self.unwrap(outcome.result())

    def outcome(self) -> asyncio.Future[frames.Outcome]:
        """The future of the run's outcome (shared: await :meth:`result`, or :meth:`Client.results` for many)."""
        if self._outcome is None or self._outcome.cancelled():
            self._outcome = self._target.follow(self.run_id)
        return self._outcome

    def unwrap(self, outcome: frames.Outcome) -> Any:
        """The result of ``outcome``, or its failure raised."""
        if outcome.phase is frames.Phase.SUCCEEDED:
            return outcome.result
        error = outcome.error or directives.ErrorInfo(type="Unknown", message=f"the run ended {outcome.phase}")
        kind = errors.RunCancelledError if outcome.phase is frames.Phase.CANCELLED else errors.RunFailedError
        raise kind(
            self.run_id,
            routine_id=self.routine_id or outcome.routine_id,
            type=error.type,
            message=error.message,
            retryable=error.retryable,
        )

    async def status(self) -> frames.RunStatus:
        """The run's status now (phase, worker, timestamps, result or error, sub-routines)."""
        return (await self._target.read(self.run_id)).status

    async def cancel(self, reason: str = "cancelled by a client") -> frames.RunStatus:
        """Cancel the run and its sub-routines; its status after (a run already finished stays as it ended)."""
        return (await self._target.cancel(self.run_id, reason=reason)).status

    def logs(self, *, follow: bool = False) -> AsyncIterator[directives.Log]:
        """The run's ``ctx.log`` lines the service keeps; with ``follow``, then new ones until the run ends."""
        return self._target.logs(self.run_id, follow=follow)


async def _all_done(futures: list[asyncio.Future[frames.Outcome]]) -> None:
    """Wait until every one of ``futures`` is done, with one future of one's own (one callback each)."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    left = len(futures)

    def count(_: asyncio.Future[frames.Outcome]) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not done.done():
            done.set_result(None)

    for future in futures:
        future.add_done_callback(count)
    try:
        await done
    except BaseException:  # cancelled: the runs' futures forget this wait
        for future in futures:
            future.remove_done_callback(count)
        raise


def _waiter(outcome: asyncio.Future[frames.Outcome]) -> asyncio.Future[None]:
    """A future of one's own that resolves when ``outcome`` does (what ``asyncio.shield`` does, for less)."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def resolve(_: asyncio.Future[frames.Outcome]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    outcome.add_done_callback(resolve)
    return waiter


def _ignore(future: asyncio.Future[Any]) -> None:
    """A cancel sent for an abandoned run: its answer (or failure) interests nobody."""
    if not future.cancelled():
        future.exception()
