"""What a client gets wrong is said clearly: a wrong URL or token names what to fix; params over the service's limit
are refused at submission with the limit (the other runs of the call still run); a routine nobody serves stays
queued and the await honours its timeout; no state file says how to start the service."""

from __future__ import annotations

import pathlib

import pytest

import workpath
from tests.integration import clients, fleets
from workpath_operator.service import runs, serving, settings


@pytest.fixture
def service_settings() -> settings.ServiceSettings:
    return settings.ServiceSettings(host="127.0.0.1", port=0, token=fleets.TOKEN, max_params_bytes=1000)


async def test_a_wrong_url_or_token_is_refused_naming_what_to_fix(
    service: serving.DirectiveService, tmp_path: pathlib.Path
) -> None:
    with pytest.raises(workpath.ClientAuthenticationError, match=r"refused the token \(HTTP 401\); check the token"):
        async with workpath.Client.for_service(service.http_url, token="wrong"):
            pass
    with pytest.raises(
        workpath.ClientError, match=r"cannot reach the workpath service at http://127\.0\.0\.1:9 .*; check the URL"
    ):
        async with workpath.Client.for_service("http://127.0.0.1:9", token=fleets.TOKEN):
            pass
    with pytest.raises(workpath.ClientError, match="start 'workpath dev MODULE' in this directory"):
        workpath.Client.local(state_file=tmp_path / "dev.json")
    state = tmp_path / "dev.json"
    state.write_text(f'{{"url": "{service.http_url}", "token": "stale"}}')
    with pytest.raises(workpath.ClientAuthenticationError, match="written by each 'workpath dev' start"):
        async with workpath.Client.local(state_file=state, token=None):
            pass


async def test_params_over_the_limit_are_refused_with_the_limit_and_the_rest_run(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet
) -> None:
    await fleet.start("w-1")
    async with clients.connected(service) as client:
        with pytest.raises(workpath.SubmissionError, match="the limit is 1000 bytes") as refused:
            await client.submit_many([client.spec("test.echo", {"value": "x" * 2000}), client.spec("test.noop")])
        assert refused.value.type == "ParamsTooLargeError"
        first, second = refused.value.accepted
        assert first is None and second is not None and await second is None


async def test_a_routine_nobody_serves_stays_queued_and_the_wait_times_out(service: serving.DirectiveService) -> None:
    async with clients.connected(service) as client:
        handle = await client.submit("nobody.serves_this")
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.2)
        status = await handle.status()
        assert (status.phase, status.reason) == (runs.Phase.PENDING, runs.Reason.NO_WORKER)
