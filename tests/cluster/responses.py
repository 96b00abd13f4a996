"""Raw responses of the generated client (``_preload_content=False``): read them fully before reuse.

A connection given back to the pool with part of its body unread hands that rest to the next request on it
(which then fails with ``BadStatusLine``); so every raw response goes through one of these.
"""

from __future__ import annotations

import json
from typing import Any

import urllib3


def discard(response: urllib3.BaseHTTPResponse) -> None:
    """Read and drop the body; give the connection back to the pool."""
    response.drain_conn()
    response.release_conn()


def json_of(response: urllib3.BaseHTTPResponse) -> Any:
    """The body as JSON; the connection goes back to the pool."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()
