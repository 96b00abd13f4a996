"""Reading ``/metrics`` pages in tests, with prometheus-client's own parser (what a scraper would see).

:func:`values` keys each sample as it reads in the page, labels sorted by name: ``workpath_queue_depth{pool=""}``,
``workpath_dispatch_latency_seconds_bucket{le="0.01"}``, ``workpath_runs_active``.
"""

from __future__ import annotations

import aiohttp
from prometheus_client import parser

from workpath_operator.service import measures, metrics


def values(page: str) -> dict[str, float]:
    """Every sample of a page in the Prometheus text format, by its name and labels."""
    found: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(page):
        for sample in family.samples:
            labels = ",".join(f'{name}="{value}"' for name, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def families(page: str) -> dict[str, str]:
    """The families of a page, by name: their type (``counter``, ``gauge``, ``histogram``)."""
    return {family.name: family.type for family in parser.text_string_to_metric_families(page)}


def page(board: measures.Board) -> str:
    """The ``/metrics`` page of a board, as the service writes it."""
    return metrics.Exposition(board).text()


async def scrape(base_url: str) -> tuple[str, str]:
    """``GET /metrics`` of a service: the page and its content type."""
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/metrics") as response:
        assert response.status == 200, await response.text()
        return await response.text(), response.headers["Content-Type"]
