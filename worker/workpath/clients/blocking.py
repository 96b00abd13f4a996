"""``workpath.SyncClient``: the client for code without an event loop (scripts, WSGI web apps, notebooks' threads).

::

    with workpath.SyncClient.local() as client:
        print(client.run("reports.build", month="2024-05"))
        handle = client.submit("reports.build", month="2024-06")
        print(handle.result(timeout=60))

It runs a :class:`~workpath.clients.api.Client` on an event loop of its own, in a daemon thread, and waits for
each call there; any number of threads may share one. A ``timeout`` that passes raises TimeoutError and leaves
the run going, as in the async client.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar

from workpath import directives, routines
from workpath.clients import api, frames

T = TypeVar("T")


class SyncClient:
    """A blocking :class:`~workpath.clients.api.Client`; build it with :meth:`local`, :meth:`for_service` or
    :meth:`for_cluster`."""

    def __init__(self, client: api.Client) -> None:
        """Open ``client`` on a loop of its own thread (:class:`~workpath.errors.ClientError` if it cannot)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="workpath-sync-client", daemon=True)
        self._thread.start()
        self.client = client
        try:
            self.call(client.open())
        except BaseException:
            self._stop_loop()
            raise

    @classmethod
    def local(cls, url: str | None = None, *, token: str | None = None) -> SyncClient:
        """The local service, found as :meth:`workpath.Client.local` finds it."""
        return cls(api.Client.local(url, token=token))

    @classmethod
    def for_service(cls, url: str, *, token: str, namespace: str | None = None) -> SyncClient:
        """The service at ``url``, as :meth:`workpath.Client.for_service`."""
        return cls(api.Client.for_service(url, token=token, namespace=namespace))

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
    ) -> SyncClient:
        """Routines in a Kubernetes cluster, as :meth:`workpath.Client.for_cluster`."""
        client = api.Client.for_cluster(
            namespace,
            kubeconfig=kubeconfig,
            context=context,
            labels=labels,
            annotations=annotations,
            service_url=service_url,
        )
        return cls(client)

    def call(self, work: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``work`` on the client's loop and wait for it (at most ``timeout`` seconds: TimeoutError)."""
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            if future.done():  # the work's own timeout
                raise
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g}s") from None

    def close(self) -> None:
        """Disconnect (the runs go on) and stop the client's thread."""
        if self._loop.is_running():
            try:
                self.call(self.client.close())
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, routine: str | routines.RoutineDefinition[..., Any], /, **params: Any) -> Any:
        """Run ``routine`` with ``params``; its result (:class:`~workpath.errors.RunFailedError` if it failed)."""
        return self.submit_with(routine, params).result()

    def run_with(
        self,
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> Any:
        """Like :meth:`run`, waiting at most ``timeout`` seconds, with :meth:`workpath.Client.spec`'s options."""
        return self.submit_with(routine, params, **options).result(timeout=timeout)

    def submit(self, routine: str | routines.RoutineDefinition[..., Any], /, **params: Any) -> SyncRunHandle:
        return self.submit_with(routine, params)

    def submit_with(
        self,
        routine: str | routines.RoutineDefinition[..., Any],
        params: Mapping[str, Any] | None = None,
        /,
        **options: Any,
    ) -> SyncRunHandle:
        return SyncRunHandle(self, self.call(self.client.submit_with(routine, params, **options)))

    def submit_many(self, specs: Iterable[frames.RunSpec]) -> list[SyncRunHandle]:
        return [SyncRunHandle(self, handle) for handle in self.call(self.client.submit_many(specs))]

    def get(self, run_id: str) -> SyncRunHandle:
        return SyncRunHandle(self, self.client.get(run_id))


class SyncRunHandle:
    """A blocking :class:`~workpath.clients.api.RunHandle`."""

    def __init__(self, client: SyncClient, handle: api.RunHandle) -> None:
        self._client = client
        self.handle = handle
        self.run_id = handle.run_id

    def __repr__(self) -> str:
        return f"<SyncRunHandle {self.run_id}>"

    def result(self, *, timeout: float | None = None) -> Any:
        """The run's result; TimeoutError after ``timeout`` seconds (the run goes on)."""
        return self._client.call(self.handle.result(timeout=timeout))

    def status(self) -> frames.RunStatus:
        return self._client.call(self.handle.status())

    def cancel(self, reason: str = "cancelled by a client") -> frames.RunStatus:
        return self._client.call(self.handle.cancel(reason))

    def logs(self, *, follow: bool = False) -> Iterator[directives.Log]:
        """The run's log lines, as :meth:`workpath.RunHandle.logs`."""
        lines = self.handle.logs(follow=follow)
        try:
            while True:
                try:
                    yield self._client.call(_next(lines))
                except StopAsyncIteration:
                    return
        finally:
            self._client.call(_close(lines))


async def _next(lines: AsyncIterator[directives.Log]) -> directives.Log:
    return await anext(lines)


async def _close(lines: AsyncIterator[directives.Log]) -> None:
    close = getattr(lines, "aclose", None)
    if close is not None:
        await close()
