"""The worker's connection to the directive service, kept up, and the reports it must not lose.

:class:`Connection` connects (and reconnects, with backoff and full jitter), reads
frames and hands each to the handler of its payload type, and writes the frames
queued with :meth:`Connection.send` in order: one outbox drained by one writer
task, so nothing that sends ever awaits. A connection the service stays silent on
for ``silence_timeout`` is dropped and opened again.

Every frame sent on a connection has an index (``v1.ready`` is 0); a pulse check
says how many frames the service has read, which confirms the reports below that
index. Unconfirmed reports stay in the :class:`ReplayBuffer` and are sent again
after a reconnect.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import sys
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, Literal

import aiohttp

from workpath import directives, errors, settings

logger = logging.getLogger("workpath.worker")

UNSENT: Final = sys.maxsize
"""The index of a frame queued while disconnected: never confirmed before it is sent."""

_CLOSE_GRACE: Final = 2.0
"""Seconds to wait for the service to answer our close."""

_CLOSED: Final = frozenset(
    {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}
)

Socket = aiohttp.ClientWebSocketResponse[Literal[False]]
Handlers = Mapping[type[directives.Payload], Callable[[Any], None]]


class ReplayBuffer:
    """Reports sent (or to send) that the service has not yet confirmed.

    Entries are ``(index, run_id, attempt, frame, final)`` in the order sent, so that
    confirming ``received`` directives pops from the left: O(confirmed), no scan. A
    final (completed/failed/released) keeps its run "held" (listed in ``v1.ready``)
    until it is confirmed; a ``starting`` report is only replayed.
    """

    __slots__ = ("_entries", "_held")

    def __init__(self) -> None:
        self._entries: collections.deque[tuple[int, directives.RunID, int, str, bool]] = collections.deque()
        self._held: dict[directives.RunID, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held(self) -> Mapping[directives.RunID, int]:
        """The runs whose final report is not confirmed yet, with its attempt."""
        return self._held

    def add(self, index: int, run_id: directives.RunID, attempt: int, frame: str, *, final: bool) -> None:
        """Remember a report sent as frame ``index`` (:data:`UNSENT` if not sent yet)."""
        self._entries.append((index, run_id, attempt, frame, final))
        if final:
            self._held[run_id] = attempt

    def confirm(self, received: int) -> int:
        """Forget the reports among the first ``received`` directives sent; return how many."""
        entries = self._entries
        held = self._held
        count = 0
        while entries and entries[0][0] < received:
            _, run_id, attempt, _, final = entries.popleft()
            if final and held.get(run_id) == attempt:
                del held[run_id]
            count += 1
        return count

    def replay(self, send: Callable[[str], int]) -> int:
        """Send every report again, in order, through ``send`` (which returns the new index)."""
        entries = self._entries
        self._entries = collections.deque(
            (send(frame), run_id, attempt, frame, final) for _, run_id, attempt, frame, final in entries
        )
        return len(self._entries)


def too_large(frame: str, *, limit: int) -> bool:
    """Whether ``frame`` is over ``limit`` bytes encoded (no need to encode it when it cannot be)."""
    return len(frame) * 4 > limit and len(frame.encode()) > limit


def backoff_ceiling(failures: int, *, base: float, cap: float) -> float:
    """The longest pause after ``failures`` failed attempts in a row: ``base * 2**(failures - 1)``, at most ``cap``."""
    return min(cap, base * 2.0 ** min(failures - 1, 32))


class Connection:
    """One connection to the directive service at a time, until :meth:`stop`.

    ``handlers`` maps each payload type the service sends to what handles it;
    ``on_open`` is called on every new connection (it sends ``v1.ready`` first, then
    whatever must be sent again); ``on_close`` when one ends; ``on_retry`` with the
    reason when a connect fails or a connection is lost, before trying again.
    """

    def __init__(
        self,
        settings: settings.WorkerSettings,
        *,
        handlers: Handlers,
        on_open: Callable[[], None],
        on_close: Callable[[], None],
        on_retry: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.replay_buffer = ReplayBuffer()
        self._handlers = handlers
        self._on_open = on_open
        self._on_close = on_close
        self._on_retry = on_retry
        self._ws: Socket | None = None
        self._sent = 0
        self._received = 0
        self._outbox: collections.deque[str] = collections.deque()
        self._deferred: dict[Hashable, Callable[[], object]] = {}
        self._batching = False
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def send(self, frame: str) -> int:
        """Queue a frame for the current connection; return its index (:data:`UNSENT` if none)."""
        if self._ws is None:
            return UNSENT
        index = self._sent
        self._sent = index + 1
        self._outbox.append(frame)
        self._wake.set()
        return index

    def defer(self, key: Hashable, send: Callable[[], object]) -> None:
        """Call ``send`` (which sends) when the writer next writes, unless :meth:`forget` comes first: for a
        report a later one may stand for (a run's ``starting``, when the run ends before it goes out).

        Only a service that chose :data:`~workpath.directives.BATCHES` takes a final report as standing for the
        run's ``starting`` too; to any other, and while disconnected (the report then waits in the replay
        buffer), ``send`` is called at once.
        """
        if self._ws is None or not self._batching:
            send()
            return
        self._deferred[key] = send
        self._wake.set()

    def forget(self, key: Hashable) -> bool:
        """Drop what :meth:`defer` left under ``key``; True if it had not been sent (nor the connection lost)."""
        return self._deferred.pop(key, None) is not None

    def stop(self) -> None:
        """Stop reconnecting; the writer flushes what is queued and ends, which ends the connection."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        """Connect, serve, and reconnect until stopped.

        Raises :class:`~workpath.errors.AuthenticationError` when the service refuses the token.
        """
        async with aiohttp.ClientSession() as session:
            failures = 0
            while not self._stopping:
                try:
                    ws = await self._connect(session)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    failures += 1
                    delay = self._backoff(failures)
                    logger.warning(
                        "cannot connect to %s (attempt %d): %s; retrying in %.2fs",
                        self.settings.url,
                        failures,
                        _describe(exc),
                        delay,
                    )
                    self._on_retry(f"cannot connect to {self.settings.url} (attempt {failures}): {_describe(exc)}")
                    await self._pause(delay)
                    continue
                if self._stopping:
                    await ws.close()
                    break
                failures = await self._serve_then_count(ws, failures)

    async def _serve_then_count(self, ws: Socket, failures: int) -> int:
        """Serve ``ws``; return the failures to count for the next connect (and pause if needed)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        await self._serve(ws)
        if loop.time() - began >= self.settings.backoff_cap:
            return 0  # it worked for a while: reconnect at once
        failures += 1  # closed soon after it opened: do not hammer the service
        await self._pause(self._backoff(failures))
        return failures

    def _backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter: uniform(0, :func:`backoff_ceiling`)."""
        settings = self.settings
        return random.uniform(0, backoff_ceiling(failures, base=settings.backoff_base, cap=settings.backoff_cap))

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the connection is stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopped.wait()

    async def _connect(self, session: aiohttp.ClientSession) -> Socket:
        settings = self.settings
        token = settings.read_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            async with asyncio.timeout(settings.connect_timeout):
                return await session.ws_connect(
                    settings.url,
                    headers=headers,
                    heartbeat=None,
                    protocols=(directives.BATCHES,),
                    autoping=True,
                    compress=0,
                    max_msg_size=settings.max_message_size,
                    timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_GRACE),
                    decode_text=False,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                how = "WORKPATH_TOKEN_FILE/--token-file" if settings.token_file else "WORKPATH_TOKEN/--token"
                raise errors.AuthenticationError(
                    f"the service at {settings.url} refused the token (HTTP {exc.status}); check {how}"
                ) from exc
            raise

    async def _serve(self, ws: Socket) -> None:
        """Work on one connection until it closes (or the connection is stopped)."""
        self._ws = ws
        self._batching = ws.protocol == directives.BATCHES
        self._sent = 0
        self._outbox.clear()
        self._deferred.clear()
        self._on_open()
        reader = asyncio.create_task(self._read(ws), name="workpath-reader")
        writer = asyncio.create_task(self._write(ws), name="workpath-writer")
        watchdog = asyncio.create_task(self._watch(), name="workpath-watchdog")
        tasks = (reader, writer, watchdog)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._ws = None
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            self._outbox.clear()
            self._send_deferred()  # now unsent: kept by the replay buffer for the next connection
            with contextlib.suppress(Exception):
                await ws.close()
            self._on_close()
        if not self._stopping:
            # The reader knows best why a connection ended; a failed write only says it is closing.
            reason = next(filter(None, (_ended(task) for task in tasks if task in done)), None) or "closed"
            logger.warning("lost the connection to %s: %s; reconnecting", self.settings.url, reason)
            self._on_retry(f"lost the connection to {self.settings.url}: {reason}")

    async def _read(self, ws: Socket) -> str | None:
        """Handle frames until the connection closes; return why it closed."""
        decode = directives.decode_from_service
        batching = self._batching
        text = aiohttp.WSMsgType.TEXT
        while True:
            message = await ws.receive()
            if message.type == text:
                data = message.data
                if batching and directives.is_batch(data):
                    for item in directives.decode_batch_from_service(data):
                        self._take(item)
                    continue
                try:
                    payload = decode(data)
                except errors.DirectiveError as exc:
                    self._take(exc)
                    continue
                self._take(payload)
            elif message.type in _CLOSED:
                code = ws.close_code
                failure = ws.exception()
                if failure is not None:
                    return _describe(failure)
                return f"closed by the service (code {code})" if code is not None else "closed"
            else:
                logger.warning("ignoring a %s frame from the service: directives are text", message.type.name)

    def _take(self, item: directives.Payload | errors.DirectiveError) -> None:
        """Handle one directive from the service (or say why it could not be read)."""
        self._received += 1
        if isinstance(item, errors.DirectiveError):
            logger.warning("ignoring a bad directive from the service: %s (%s)", item, item.code)
            return
        try:
            self._handlers[type(item)](item)
        except Exception:
            logger.exception("failed to handle %s from the service", item.KEY)

    async def _write(self, ws: Socket) -> None:
        """The single writer: send queued frames in order; end once stopping and flushed."""
        outbox = self._outbox
        wake = self._wake
        batching = self._batching
        while True:
            if self._deferred:  # before every frame: a report deferred waits for one frame at most
                self._send_deferred()
            if outbox:
                await ws.send_str(directives.next_frame(outbox) if batching else outbox.popleft())
                continue
            if self._stopping:
                return
            wake.clear()
            await wake.wait()

    def _send_deferred(self) -> None:
        """Send what :meth:`defer` left, in the order it was left."""
        sends = list(self._deferred.values())
        self._deferred.clear()
        for send in sends:
            send()

    async def _watch(self) -> str:
        """End when the service has sent nothing for ``silence_timeout`` (it pulses regularly)."""
        timeout = self.settings.silence_timeout
        seen = self._received
        while True:
            await asyncio.sleep(timeout)
            if self._received == seen:
                return f"no directive from the service for {timeout:.0f}s"
            seen = self._received


def _ended(task: asyncio.Task[Any]) -> str | None:
    """Why a connection task ended: its result, or its exception."""
    if task.cancelled():
        return None
    failure = task.exception()
    if failure is not None:
        return _describe(failure)
    result = task.result()
    return result if isinstance(result, str) else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
