"""Heartbeats: every worker's pulse is checked each interval; the unresponsive are lost.

Each round sends ``v1.heartbeat.check_pulse`` to every connected worker, with the number of frames read on its
connection so far (so that it can forget the reports the service has). A worker that leaves
``heartbeat_misses`` pulses in a row unanswered is unresponsive: its runs are queued again and its connection is
closed. A worker's ``give_pulse`` answers a check, or (with no ID) says its status changed; a worker that starts
draining gets a pulse at once, so that its last reports are confirmed and it can leave without waiting a round.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from workpath import directives
from workpath_operator.service import rostering, sessions, settings

if TYPE_CHECKING:
    from aiohttp import web


class Heartbeat:
    """The heartbeat of one directive service; ``close`` closes a connection without waiting for it."""

    def __init__(
        self,
        *,
        roster: rostering.Roster,
        settings: settings.ServiceSettings,
        close: Callable[[web.WebSocketResponse, bytes], None],
    ) -> None:
        self._roster = roster
        self._settings = settings
        self._close = close
        self._pulse_ids = itertools.count(1)

    async def beat_forever(self) -> None:
        interval = self._settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            self.check_pulses()

    def check_pulses(self) -> None:
        """One heartbeat round: count misses, give up on the unresponsive, send new pulses."""
        limit = self._settings.heartbeat_misses
        for session in list(self._roster.sessions.values()):
            ws = session.ws
            if ws is None:
                continue
            if session.awaiting_pulse:
                misses = session.miss_pulse()
                if misses >= limit:
                    self._roster.lose(session, f"missed {misses} heartbeats; it is unresponsive")
                    self._close(ws, b"unresponsive")
                    continue
            session.check_pulse(next(self._pulse_ids))

    def pulse_given(self, session: sessions.WorkerSession, pulse: directives.GivePulse, size: int) -> None:
        """The handler of ``v1.heartbeat.give_pulse``."""
        if pulse.id is not None:
            session.pulse_answered(pulse.id)
        elif pulse.status == "draining" and not session.awaiting_pulse:
            session.check_pulse(next(self._pulse_ids))  # confirms its last reports now, so that it can leave at once
        self._roster.set_status(session, pulse.status)
