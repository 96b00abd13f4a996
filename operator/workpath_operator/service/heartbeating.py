"""Heartbeats: every worker's pulse is checked each interval; the unresponsive are lost.

Each round sends ``v1.heartbeat.check_pulse`` to every connected worker. A worker that leaves
``heartbeat_misses`` pulses in a row unanswered is unresponsive: its runs are queued again and its connection is
closed. A worker's ``give_pulse`` answers a check, or (with no ID) says its status changed.

A pulse's ``received`` tells the worker which of its directives it may forget (its final reports above all), so it
counts only directives whose effect the store has *written*: a service killed right after confirming a report must not
lose what the worker then forgets (the run would be queued again and run twice). Each round notes the directives read
on every connection and asks the store for a barrier; once it resolves, those frames are durable, and the next
round's pulses confirm them. Pulses stay on time for liveness; confirmation lags the reading by at most a round
(not at all with a store that is written at once). A worker that starts draining gets a barrier and, once it
resolves, a pulse at once, so that it can leave without waiting a round.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from workpath import directives
from workpath_operator.service import rostering, sessions, settings, stores

if TYPE_CHECKING:
    from aiohttp import web


class Heartbeat:
    """The heartbeat of one directive service; ``close`` closes a connection without waiting for it."""

    def __init__(
        self,
        *,
        roster: rostering.Roster,
        store: stores.RunStore,
        settings: settings.ServiceSettings,
        close: Callable[[web.WebSocketResponse, bytes], None],
    ) -> None:
        self._roster = roster
        self._store = store
        self._settings = settings
        self._close = close
        self._pulse_ids = itertools.count(1)

    async def beat_forever(self) -> None:
        interval = self._settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            self.check_pulses()

    def check_pulses(self) -> None:
        """One heartbeat round: count misses, give up on the unresponsive, note what is read, send new pulses."""
        alive = [session for session in list(self._roster.sessions.values()) if self._still_alive(session)]
        self._confirm_once_durable(alive)
        for session in alive:
            session.check_pulse(next(self._pulse_ids))

    def pulse_given(self, session: sessions.WorkerSession, pulse: directives.GivePulse, size: int) -> None:
        """The handler of ``v1.heartbeat.give_pulse``."""
        if pulse.id is not None:
            session.pulse_answered(pulse.id)
        elif pulse.status == "draining":
            # Confirms its last reports as soon as they are written, so that it can leave at once.
            self._confirm_once_durable([session], then=lambda: session.check_pulse(next(self._pulse_ids)))
        self._roster.set_status(session, pulse.status)

    def _still_alive(self, session: sessions.WorkerSession) -> bool:
        """Whether a connected worker answered enough pulses; one that did not is lost and its connection closed."""
        ws = session.ws
        if ws is None:
            return False
        if session.awaiting_pulse:
            misses = session.miss_pulse()
            if misses >= self._settings.heartbeat_misses:
                self._roster.lose(session, f"missed {misses} heartbeats; it is unresponsive")
                self._close(ws, b"unresponsive")
                return False
        return True

    def _confirm_once_durable(
        self, confirming: Iterable[sessions.WorkerSession], *, then: Callable[[], None] | None = None
    ) -> None:
        """Note the frames read on these sessions; once the store has written their effects, pulses confirm them.

        With a store written at once that is now, before this round's pulses; else when the barrier resolves
        (``then`` runs then). Never awaits: the directive loop goes on meanwhile.
        """
        read = [(session, *session.frames_read()) for session in confirming]
        barrier = self._store.barrier()

        def durable(_: object = None) -> None:
            if barrier.cancelled():
                return  # the store is closing: what it did not write is not confirmed
            for session, connection, received in read:
                session.made_durable(connection, received)
            if then is not None:
                then()

        if barrier.done():
            durable()
        else:
            barrier.add_done_callback(durable)
