"""A client that loses its connection with runs in flight: the runs go on in the service, the client reconnects
and awaits them again by run ID, and another client (another process, later) awaits a run by its ID too."""

from __future__ import annotations

import pathlib

import pytest

import workpath
from tests import waiting
from tests.integration import clients, fleets, proxies
from workpath_operator.service import runs, serving


async def test_runs_in_flight_survive_a_cut_connection_and_are_awaited_again(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, proxy: proxies.TcpProxy, tmp_path: pathlib.Path
) -> None:
    await fleet.start("w-1", slots=4)
    gate = tmp_path / "gate"
    async with clients.connected(service, url=f"http://127.0.0.1:{proxy.port}") as client:
        handles = await client.submit_many(
            client.spec("test.gate", {"markers": str(tmp_path), "gate": str(gate)}) for _ in range(3)
        )
        accepted = proxy.accepted
        proxy.cut()
        await waiting.eventually(lambda: proxy.accepted > accepted, what="the client to reconnect")
        gate.touch()
        assert await client.results(handles) == ["opened on attempt 1"] * 3
    assert all(service.dispatcher.get(h.run_id).phase is runs.Phase.SUCCEEDED for h in handles)  # type: ignore[union-attr]


async def test_another_client_awaits_a_run_by_its_id(
    service: serving.DirectiveService, fleet: fleets.WorkerFleet, tmp_path: pathlib.Path
) -> None:
    await fleet.start("w-1")
    gate = tmp_path / "gate"
    async with clients.connected(service) as first:
        handle = await first.submit("test.gate", markers=str(tmp_path), gate=str(gate))
    async with clients.connected(service) as second:
        found = second.get(handle.run_id)
        assert (await found.status()).phase in {runs.Phase.PENDING, runs.Phase.RUNNING}
        gate.touch()
        assert await found == "opened on attempt 1"
        assert await second.get(handle.run_id).result() == "opened on attempt 1"  # finished: answered at once


async def test_awaiting_an_unknown_run_id_says_there_is_none(service: serving.DirectiveService) -> None:
    async with clients.connected(service) as client:
        with pytest.raises(workpath.RunNotFoundError, match="no run no-such-run"):
            await client.get("no-such-run").result(timeout=5)
