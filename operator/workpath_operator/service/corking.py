"""Corking: several WebSocket frames written to a worker together go out in one TCP segment, not one each.

A writer that drains a queue of frames writes each with its own system call, and on a socket with
``TCP_NODELAY`` (aiohttp sets it) each write sends a segment at once: on loopback, the kernel does the
receiver's share of the work in that call too. While a batch is written the socket is *corked*
(``TCP_CORK``, Linux): the frames collect in the kernel and leave as one segment when it is uncorked,
which costs the sender less per frame and wakes the reader once. A lone frame is written as before
(corking it would only add two system calls). Where ``TCP_CORK`` does not exist, nothing is corked.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

_CORK: int | None = getattr(socket, "TCP_CORK", None)


@contextlib.contextmanager
def corked(ws: object) -> Iterator[None]:
    """Hold the frames written in the block in the kernel until it ends (a no-op where that is not possible)."""
    extra_info = getattr(ws, "get_extra_info", None)  # a stand-in for a connection may have no transport
    sock = extra_info("socket") if extra_info is not None and _CORK is not None else None
    if sock is None or not _set(sock, 1):
        yield
        return
    try:
        yield
    finally:
        _set(sock, 0)


def _set(sock: Any, value: int) -> bool:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _CORK, value)
    except OSError:
        return False  # closed meanwhile, or not TCP
    return True
