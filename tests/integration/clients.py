"""``workpath.Client`` for the integration tests: connected to the service under test, closed when the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import workpath
from tests.integration import fleets
from workpath_operator.service import serving


@contextlib.asynccontextmanager
async def connected(service: serving.DirectiveService, *, url: str | None = None) -> AsyncIterator[workpath.Client]:
    """A client of ``service`` (or of ``url``, a proxy in front of it), open for the ``async with`` block."""
    async with workpath.Client.for_service(url or service.http_url, token=fleets.TOKEN) as client:
        yield client
