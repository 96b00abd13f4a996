"""One client's connection to ``/v1/clients``: the runs it waits for, and what is written back to it.

A :class:`ClientSession` is one connection (a client that reconnects gets a new one and awaits its runs again by
run ID). It counts the runs it waits for (*in flight*) against the service's limit, and writes in one writer task:
answers as they are queued, and the outcomes of runs finished since the last write joined into as few
``v1.client.finished`` frames as fit in the frame limit. Each outcome is encoded once, when its run finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aiohttp import web

from workpath import directives
from workpath.clients import frames
from workpath_operator.service import authenticating, runs

logger = logging.getLogger("workpath.clients")

#: Seconds between looks at a paused connection (over its limit): a client gone meanwhile ends it.
PAUSED_CHECK = 1.0


class ClientSession:
    """One client connection: its identity and namespace, the runs it waits for, its writer; see the module."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        identity: authenticating.Identity,
        namespace: str | None,
        max_in_flight: int,
        max_frame_bytes: int,
        transport: asyncio.BaseTransport | None,
    ) -> None:
        self.ws = ws
        self._transport = transport
        self.identity = identity
        self.namespace = namespace
        self._max_in_flight = max_in_flight
        self._max_frame_bytes = max_frame_bytes
        self._waiting: dict[int, asyncio.Future[runs.Run]] = {}
        self._answers: list[str] = []
        self._outcomes: list[str] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False

    @property
    def in_flight(self) -> int:
        """Runs submitted or awaited on this connection whose outcome is not written yet."""
        return len(self._waiting)

    def watch(self, request_id: int, finished: asyncio.Future[runs.Run]) -> None:
        """Write the outcome of request ``request_id`` once ``finished`` (the dispatcher's) resolves."""
        self._waiting[request_id] = finished
        finished.add_done_callback(lambda future: self._finished(request_id, future))
        if len(self._waiting) >= self._max_in_flight:
            self._room.clear()

    def send(self, frame: str) -> None:
        """Queue a frame (an answer) for the writer; never waits."""
        self._answers.append(frame)
        self._wake.set()

    def refuse(self, code: str, message: str, *, request_ids: list[int], in_reply_to: str | None) -> None:
        self.send(
            directives.encode(
                frames.Error(code=code, message=message, request_ids=request_ids, in_reply_to=in_reply_to)
            )
        )

    async def room(self) -> bool:
        """Wait until the connection is under its in-flight limit; False if the client went away meanwhile."""
        while not self._room.is_set():
            try:
                await asyncio.wait_for(self._room.wait(), PAUSED_CHECK)
            except TimeoutError:
                transport = self._transport
                if self.closed or transport is None or transport.is_closing():
                    return False
        return not self.closed

    def close(self) -> None:
        """The connection ended: stop waiting for its runs (they go on)."""
        self.closed = True
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.cancel()
        self._room.set()
        self._wake.set()

    def _finished(self, request_id: int, future: asyncio.Future[runs.Run]) -> None:
        if future.cancelled() or self._waiting.pop(request_id, None) is not future:
            return
        self._outcomes.append(encode_outcome(request_id, future.result()))
        self._wake.set()
        if len(self._waiting) < self._max_in_flight:
            self._room.set()

    async def write(self) -> None:
        """The single writer: answers, then the outcomes ready, until the connection closes."""
        ws = self.ws
        wake = self._wake
        try:
            while not self.closed:
                await wake.wait()
                wake.clear()
                while self._answers or self._outcomes:
                    answers, self._answers = self._answers, []
                    for frame in answers:
                        await ws.send_str(frame)
                    outcomes, self._outcomes = self._outcomes, []
                    for chunk in _chunks(outcomes, limit=self._max_frame_bytes):
                        await ws.send_str(frames.encode_finished(chunk))
        except (ConnectionError, RuntimeError) as exc:  # aiohttp raises these for a closing connection
            logger.debug("stopped writing to a client: %s", exc)


def encode_outcome(request_id: int, run: runs.Run) -> str:
    """A finished run's outcome as the item of a ``v1.client.finished`` frame."""
    if run.phase is runs.Phase.SUCCEEDED:
        return frames.encode_succeeded(request_id, run.run_id, run.result)
    outcome = frames.Outcome(
        request_id=request_id, run_id=run.run_id, phase=run.phase, error=run.error, routine_id=run.routine_id
    )
    return outcome.model_dump_json(exclude_none=True)


def _chunks(items: list[str], *, limit: int) -> Iterator[list[str]]:
    """``items`` in runs whose joined size stays under ``limit`` characters (one item alone may be over)."""
    if not items:
        return
    chunk: list[str] = []
    size = 0
    for item in items:
        if chunk and size + len(item) > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    yield chunk
