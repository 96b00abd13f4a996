"""Connecting: the bearer token, a refused token exits 3, other failures back off and retry."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import re

import pytest

import workpath
from tests import waiting
from tests.worker import fakes
from workpath import connecting, directives, working


@workpath.routine("unit.noop")
async def noop(ctx: workpath.Context) -> None:
    return None


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_exits_with_code_3_and_says_what_to_check(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with fakes.fake_service() as service:
        service.refuse_with = status
        worker = working.Worker(fakes.worker_settings(service), [noop])
        async with fakes.running(worker) as task:
            assert await asyncio.wait_for(task, fakes.TIMEOUT) == 3
    assert service.attempts == 1
    assert f"the service at {service.url} refused the token (HTTP {status}); check WORKPATH_TOKEN/--token" in (
        caplog.text
    )


async def test_the_token_file_is_read_again_on_every_connect(tmp_path: pathlib.Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(fakes.TOKEN + "\n")
    async with fakes.fake_service() as service:
        config = fakes.worker_settings(service, token=None, token_file=token_file)
        async with fakes.running(working.Worker(config, [noop])):
            first = await service.next_connection()
            await first.expect(directives.Ready)
            service.token = "rotated-token"
            token_file.write_text("rotated-token")
            await first.close()
            second = await service.next_connection()
            await second.expect(directives.Ready)


async def test_a_service_that_is_down_is_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="workpath.worker")
    service = fakes.FakeService()
    await service.start()
    port = service.port
    await service.stop()  # nobody listens there now
    try:
        worker = working.Worker(fakes.worker_settings(service), [noop])
        async with fakes.running(worker):
            await waiting.eventually(lambda: "(attempt 3)" in caplog.text, what="three failed attempts")
            await service.start(port)
            connection = await service.next_connection()
            await connection.expect(directives.Ready)
    finally:
        await service.stop()
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cannot connect")]
    assert failures[0].startswith(f"cannot connect to {service.url} (attempt 1): ")
    assert "retrying in" in failures[0]
    config = fakes.worker_settings(service)
    for failure in failures:  # each pause is jittered below the ceiling of its attempt
        match = re.search(r"\(attempt (\d+)\).*retrying in ([\d.]+)s", failure)
        assert match is not None, failure
        attempt, delay = match.groups()
        ceiling = connecting.backoff_ceiling(int(attempt), base=config.backoff_base, cap=config.backoff_cap)
        assert 0 <= float(delay) <= round(ceiling, 2)


def test_the_backoff_ceiling_doubles_per_failure_up_to_the_cap() -> None:
    ceilings = [connecting.backoff_ceiling(failures, base=0.1, cap=1.0) for failures in range(1, 7)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert connecting.backoff_ceiling(10_000, base=0.1, cap=5.0) == 5.0  # no overflow after a long outage


async def test_a_silent_service_is_left_and_reconnected() -> None:
    async with fakes.fake_service() as service:
        worker = working.Worker(fakes.worker_settings(service, silence_timeout=0.1), [noop])
        async with fakes.running(worker):
            first = await service.next_connection()
            await first.expect(directives.Ready)
            # no pulse checks: the worker gives up on this connection and opens another
            second = await service.next_connection()
            await second.expect(directives.Ready)
            await asyncio.wait_for(first.closed.wait(), fakes.TIMEOUT)
