"""Answers of the API server remembered briefly: TokenReviews and SubjectAccessReviews.

Every worker connection and every runs API request would otherwise cost a review on the API
server. :class:`Memo` keeps each answer for as long as its asker says (never, for an answer not
worth keeping), in a bounded least-recently-used cache, and lets concurrent askers of one
question share one review.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Hashable


class Memo[K: Hashable, V]:
    """Answers by question, each kept until its own expiry; ``size`` of them at most."""

    def __init__(self, *, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._answers: collections.OrderedDict[K, tuple[V, float]] = collections.OrderedDict()
        self._asking: dict[K, asyncio.Task[tuple[V, float]]] = {}
        #: Answers found remembered, and questions actually asked.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._answers)

    async def get(self, key: K, ask: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        """The answer to ``key``: remembered, or from ``ask()``, which returns it and the seconds to keep it."""
        remembered = self._answers.get(key)
        if remembered is not None:
            answer, expires = remembered
            if time.monotonic() < expires:
                self._answers.move_to_end(key)
                self.hits += 1
                return answer
            del self._answers[key]
        asking = self._asking.get(key)
        if asking is None:
            self.misses += 1
            asking = asyncio.ensure_future(ask())
            asking.set_name(f"workpath-{self._name}")
            self._asking[key] = asking
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        answer, lifetime = await asyncio.shield(asking)
        if lifetime > 0 and self._size > 0:
            self._answers[key] = (answer, time.monotonic() + lifetime)
            self._answers.move_to_end(key)
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)
        return answer
