"""A sub-routine request whose params are over ``max_params_bytes`` is answered, through the worker's socket, with a
failure of that request (the routine's ``ctx.call`` raises it) and makes no run; params at the limit make a child.
The service measures params only when the request's own size could be over the limit, so both sides of it count."""

from __future__ import annotations

import json

import pytest

from tests import waiting
from tests.integration import rawworkers, submitting
from workpath import directives
from workpath_operator.service import limiting, serving, settings

MAX_PARAMS_BYTES = 4 << 10


@pytest.fixture
def service_settings(service_settings: settings.ServiceSettings) -> settings.ServiceSettings:
    return service_settings.replace(max_params_bytes=MAX_PARAMS_BYTES)


def params_of(size: int) -> dict[str, str]:
    """Params that are ``size`` bytes as compact JSON."""
    params = {"blob": "x" * (size - len('{"blob":""}'))}
    assert len(json.dumps(params, separators=(",", ":"))) == size
    return params


@pytest.mark.parametrize("batching", [False, True], ids=["alone", "in-a-batch"])
async def test_params_over_the_limit_fail_the_request_and_at_the_limit_make_a_child(
    service: serving.DirectiveService, batching: bool
) -> None:
    async with rawworkers.connected(service, "parent", batching=batching, slots=2) as worker:
        parent = submitting.submit(service, "test.parent")
        start = await worker.given(parent.run_id)

        def request(request_id: str, size: int) -> str:
            asked = directives.RequestSubroutine(
                request_id=directives.RequestID(request_id),
                routine_id=directives.RoutineID("test.child"),
                params=params_of(size),
                parent_run_id=start.run_id,
            )
            return directives.encode(asked)

        frames = [request("over", MAX_PARAMS_BYTES + 1), request("at", MAX_PARAMS_BYTES)]
        if batching:
            await worker.ws.send_str(directives.encode_batch(frames))
        else:
            for frame in frames:
                await worker.ws.send_str(frame)

        await waiting.eventually(
            lambda: any(failed.request_id == "over" for failed in worker.of(directives.RoutineFailed)),
            timeout=rawworkers.TIMEOUT,
            what="the refusal of the request over the limit",
        )
        (refusal,) = [failed for failed in worker.of(directives.RoutineFailed) if failed.request_id == "over"]
        assert refusal.error.type == limiting.PARAMS_TOO_LARGE
        assert f"the limit is {MAX_PARAMS_BYTES} bytes" in refusal.error.message
        assert not refusal.error.retryable
        assert parent.children is not None
        assert set(parent.children) == {"at"}
        assert parent.children[directives.RequestID("at")].spec.params == params_of(MAX_PARAMS_BYTES)
