"""``/metrics``, scraped after runs and read with prometheus-client's parser, counts what ran: runs finished by
phase, a dispatch per attempt, durations by phase, the busy slots, the queue per declared pool, and the
directives refused by code. The page comes in the format the scraper asks for, and ``workpath dev`` without
prometheus-client says what to install."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser

import workpath_operator.service
from tests import scrapes, waiting
from tests.integration import fleets, submitting
from workpath import directives
from workpath_operator.service import runs, serving

AUTH = {"Authorization": f"Bearer {fleets.TOKEN}"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_runs_are_counted_by_phase_with_their_latencies_and_durations(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1", slots=3)
    for _ in range(5):
        await submitting.finished(service, submitting.submit(service, "test.noop"))
    failed = await submitting.finished(service, submitting.submit(service, "test.fail"))
    assert failed.phase is runs.Phase.FAILED
    sleeper = submitting.submit(service, "test.sleep", seconds=60)
    await waiting.eventually(lambda: sleeper.phase is runs.Phase.RUNNING, what="the sleeper to start")

    page, content_type = await scrapes.scrape(service.http_url)
    values = scrapes.values(page)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert values['workpath_worker_slots{pool="default"}'] == 3
    assert values['workpath_worker_slots_busy{pool="default"}'] == 1
    assert values["workpath_runs_active"] == 1

    service.dispatcher.cancel(sleeper.run_id, reason="test over")
    values = scrapes.values((await scrapes.scrape(service.http_url))[0])
    phases = [phase for phase in runs.Phase if phase.finished]
    finished = {phase: values[f'workpath_runs_finished_total{{phase="{phase}"}}'] for phase in phases}
    assert finished == {runs.Phase.SUCCEEDED: 5, runs.Phase.FAILED: 1, runs.Phase.CANCELLED: 1}
    # Every run started, so each has a duration under the phase it ended in, and one dispatch.
    for phase, count in finished.items():
        assert values[f'workpath_run_duration_seconds_count{{phase="{phase}"}}'] == count
        assert values[f'workpath_run_duration_seconds_bucket{{le="+Inf",phase="{phase}"}}'] == count
    assert values['workpath_run_duration_seconds_bucket{le="1.0",phase="Succeeded"}'] == 5
    assert values['workpath_run_duration_seconds_bucket{le="10.0",phase="Cancelled"}'] == 1
    assert values["workpath_dispatch_latency_seconds_count"] == 7
    assert 0 < values["workpath_dispatch_latency_seconds_sum"] < 7 * 0.1
    assert values['workpath_worker_slots_busy{pool="default"}'] == 0
    assert scrapes.families(page)["workpath_dispatch_latency_seconds"] == "histogram"


async def test_queued_runs_count_toward_their_declared_pool_or_none(service: serving.DirectiveService) -> None:
    service.dispatcher.pools.declare_pools({"reports": ["reports.*"]})
    queued = [submitting.submit(service, routine) for routine in ("reports.build", "reports.mail", "nobody.runs.this")]

    values = scrapes.values((await scrapes.scrape(service.http_url))[0])
    assert values['workpath_queue_depth{pool="reports"}'] == 2
    assert values['workpath_queue_depth{pool=""}'] == 1
    for run in queued:
        service.dispatcher.cancel(run.run_id, reason="test over")
    values = scrapes.values((await scrapes.scrape(service.http_url))[0])
    assert values['workpath_queue_depth{pool="reports"}'] == values['workpath_queue_depth{pool=""}'] == 0
    assert values['workpath_runs_finished_total{phase="Cancelled"}'] == 3
    assert values['workpath_run_duration_seconds_count{phase="Cancelled"}'] == 0  # none of them started


async def test_a_bad_frame_is_counted_under_its_code(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(service.url, headers=AUTH) as ws:
        await ws.send_str("this is not JSON")
        message = await ws.receive(timeout=10)
        refusal = directives.decode_from_service(message.data)
        assert isinstance(refusal, directives.Error) and refusal.code == directives.ErrorCode.BAD_JSON

    values = scrapes.values((await scrapes.scrape(service.http_url))[0])
    assert values['workpath_directive_errors_total{code="bad_json"}'] == 1
    assert values['workpath_directive_errors_total{code="not_ready"}'] == 0
    assert service.directive_errors == 1


async def test_a_scraper_that_asks_for_openmetrics_gets_it(
    service: serving.DirectiveService, http: aiohttp.ClientSession
) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"}
    async with http.get(f"{service.http_url}/metrics", headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        page = await response.text()
    names = {family.name for family in openmetrics_parser.text_string_to_metric_families(page)}  # type: ignore[no-untyped-call]
    assert {"workpath_runs_finished", "workpath_dispatch_latency_seconds", "workpath_queue_depth"} <= names


async def test_without_prometheus_client_metrics_says_what_to_install(
    service: serving.DirectiveService, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in `workpath dev` installed without the operator extra: the module and its library cannot be imported.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "workpath_operator.service.metrics")
    monkeypatch.delattr(workpath_operator.service, "metrics")
    async with http.get(f"{service.http_url}/metrics") as response:
        assert response.status == 501
        assert "pip install workpath[operator]" in await response.text()
    async with http.get(f"{service.http_url}/healthz") as response:
        assert response.status == 200
