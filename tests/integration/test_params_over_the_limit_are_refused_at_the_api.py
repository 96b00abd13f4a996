"""POST /v1/runs with params over max_params_bytes is refused with 413, the limit and how to change it, and
counted in /metrics; params within the limit run."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.integration import fleets
from workpath_operator.service import serving, settings

AUTH = {"Authorization": f"Bearer {fleets.TOKEN}"}


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    return service_settings.replace(max_params_bytes=1024)


async def test_params_over_the_limit_get_413_with_the_limit(service: serving.DirectiveService) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as http:
        big = {"routineID": "test.echo", "params": {"value": "x" * 2000}}
        async with http.post(f"{service.http_url}/v1/runs", json=big) as response:
            assert response.status == 413
            error = json.loads(await response.text())["error"]
        small = {"routineID": "test.echo", "params": {"value": "x" * 900}}
        async with http.post(f"{service.http_url}/v1/runs", json=small) as response:
            assert response.status == 201
        async with http.get(f"{service.http_url}/metrics") as response:
            page = await response.text()
    assert "the params of test.echo are 2012 bytes as JSON; the limit is 1024 bytes" in error
    assert "WORKPATH_MAX_PARAMS_BYTES" in error
    assert 'workpath_limit_breaches_total{limit="params_bytes"} 1' in page
