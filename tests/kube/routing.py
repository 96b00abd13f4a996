"""What stands in for the operator's Service when operator replicas run as local processes: there is no Service (and
no kube-proxy) for them, and two replicas cannot listen on one port of one host, so each gets its own port and
:class:`ReadyRouter` listens on the port the workers dial. It forwards each new connection to the replica that is
selected (as the chart's Service selects the pod with the leader label: see :mod:`tests.kube.operator_pods`) and
whose ``/readyz`` answers 200, or closes it when none is, as a Service with no ready endpoint would. Open
connections are left alone: a replica that dies or stops closes its own.

>>> with routing.ReadyRouter(harness.port, [port_a, port_b]):
...     harness.start_operator(port=port_a, args=ELECTING)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Self

PROBE_TIMEOUT = 1.0


def answers(port: int, path: str) -> int | None:
    """The HTTP status of ``GET path`` on 127.0.0.1:``port``; None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=PROBE_TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)
    except (urllib.error.URLError, OSError):
        return None


class ReadyRouter:
    """Forwards connections on ``port`` to the first of ``targets`` (ports) that is ``selected`` (a blocking
    call, run on a thread: it may ask the API server) and ready; runs on a thread of its own, so that tests on the
    (blocking) Kubernetes client can use it."""

    def __init__(self, port: int, targets: Sequence[int], *, selected: Callable[[int], bool] = lambda _: True) -> None:
        self.port = port
        self.targets = tuple(targets)
        self._selected = selected
        #: How many connections went to each target port.
        self.routed: dict[int, int] = dict.fromkeys(self.targets, 0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ready-router", daemon=True)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = await self._ready_target()
        if target is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.transport.abort()
            return
        self.routed[target] += 1
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

            def forget(_: asyncio.Task[None], sink: asyncio.StreamWriter = sink) -> None:
                self._writers.discard(sink)

            task.add_done_callback(forget)

    async def _ready_target(self) -> int | None:
        for target in self.targets:
            if await _ready(target) and await asyncio.to_thread(self._selected, target):
                return target
        return None


async def _ready(port: int) -> bool:
    """Whether ``GET /readyz`` on 127.0.0.1:``port`` answers 200 (without blocking the router's loop)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                status_line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return status_line.split(b" ")[1:2] == [b"200"]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.transport.abort()
