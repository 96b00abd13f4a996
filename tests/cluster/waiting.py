"""Polling a condition until a deadline: the only way the harness waits for anything."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.cluster import errors


def wait_for[T](
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
    stop: threading.Event | None = None,
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Exceptions of the ``ignore`` types count as "not yet" (e.g. connection refused while a server starts);
    the last one is chained to the timeout error. ``stop``, when set, aborts the wait early (with the same error).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
        except ignore as e:
            last_error = e
        else:
            if result:
                return result
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise errors.WaitTimeoutError(f"Timed out after {timeout:g} s waiting for {what}{detail}.") from (
                last_error
            )
        pause = min(interval, remaining)
        if stop is not None:
            stop.wait(pause)
        else:
            time.sleep(pause)
