"""List-then-watch of a collection as raw JSON, stoppable at once from another thread."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator

import kubernetes.client
import urllib3

from tests.cluster import rawapi

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """``LISTED`` (``object`` is the whole list, after every (re)list), ``ADDED``, ``MODIFIED`` or ``DELETED``."""

    type: str
    object: rawapi.Json


class Watcher:
    """Iterate over the events of the collection at ``path`` (e.g. ``/api/v1/pods``).

    It lists first (yielding one ``LISTED`` event with the list), then watches from that resourceVersion,
    resuming after server-side timeouts and relisting when the resourceVersion has expired (410 Gone).
    :meth:`stop`, from any thread, ends the iteration promptly: it shuts down the socket of the open watch.
    """

    def __init__(self, api: rawapi.RawApi, path: str, *, timeout_seconds: int = 60, retry_delay: float = 0.5) -> None:
        self._api = api
        self._path = path
        self._timeout_seconds = timeout_seconds
        self._retry_delay = retry_delay
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._response is not None:
                with contextlib.suppress(Exception):  # Already closed or released: nothing to interrupt.
                    self._response.shutdown()

    def __iter__(self) -> Iterator[WatchEvent]:
        resource_version: str | None = None
        while not self._stopped.is_set():
            try:
                if resource_version is None:
                    listed = self._api.get(self._path)
                    resource_version = listed["metadata"]["resourceVersion"]
                    yield WatchEvent("LISTED", listed)
                for event in self._watch_once(resource_version):
                    if event.type == "ERROR":
                        if event.object.get("code") == 410:  # The resourceVersion is too old: relist.
                            resource_version = None
                            break
                        raise kubernetes.client.ApiException(
                            status=event.object.get("code"), reason=event.object.get("message")
                        )
                    resource_version = event.object["metadata"]["resourceVersion"]
                    if event.type != "BOOKMARK":
                        yield event
            except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                if self._stopped.is_set():
                    break
                if isinstance(e, kubernetes.client.ApiException) and e.status == 410:
                    resource_version = None
                logger.warning("Watch of %s failed; retrying: %r", self._path, e)
                self._stopped.wait(self._retry_delay)

    def _watch_once(self, resource_version: str) -> Iterator[WatchEvent]:
        query = {
            "watch": True,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self._timeout_seconds,
        }
        response = self._api.open("GET", self._path, query=query, timeout=(10, self._timeout_seconds + 10))
        with self._lock:
            self._response = response
        try:
            if self._stopped.is_set():  # stop() ran before there was a response to interrupt.
                return
            for line in _lines(response):
                raw = json.loads(line)
                yield WatchEvent(raw["type"], raw["object"])
        finally:
            with self._lock:
                self._response = None
            # Closed, not drained: a stopped or abandoned watch stream has no end to read up to.
            response.close()
            response.release_conn()


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The newline-separated JSON documents of a watch, as they arrive (the body is chunked)."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from (line for line in complete if line.strip())
    if pending.strip():
        yield pending
