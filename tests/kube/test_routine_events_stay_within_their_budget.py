"""Kubernetes Events on Routines: recorded without waiting, posted in the background, and never more than the
budget allows (a burst, then a rate); what is over it is dropped and counted, not queued."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests import waiting
from workpath_operator.kube import clients, recording

REF = recording.ObjectRef("workpath.dev/v1alpha1", "Routine", "jobs", "october-report", "uid-1")


class FakeApi:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.failing = False

    async def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        if self.failing:
            raise clients.ApiError(403, "Forbidden", "no", method="POST", path="/events")
        self.events.append(event)


async def test_events_are_posted_about_the_routine() -> None:
    api = FakeApi()
    recorder = recording.EventRecorder(api, rate=100, burst=10)  # type: ignore[arg-type]
    recorder.start()
    try:
        recorder.record(REF, type="Normal", reason="Started", message="attempt 1 started on worker-7")
        await waiting.eventually(lambda: len(api.events) == 1)
    finally:
        await recorder.close()
    (event,) = api.events
    assert event["involvedObject"] == {
        "apiVersion": "workpath.dev/v1alpha1",
        "kind": "Routine",
        "namespace": "jobs",
        "name": "october-report",
        "uid": "uid-1",
    }
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "Started", "attempt 1 started on worker-7")
    assert event["metadata"] == {"generateName": "october-report.", "namespace": "jobs"}


async def test_a_flood_of_events_is_cut_to_the_burst() -> None:
    api = FakeApi()
    recorder = recording.EventRecorder(api, rate=0.001, burst=5)  # type: ignore[arg-type]
    recorder.start()
    try:
        for n in range(100):
            recorder.record(REF, type="Normal", reason="Queued", message=str(n))
        await waiting.eventually(lambda: len(api.events) == 5)
    finally:
        await recorder.close()
    assert recorder.dropped == 95
    assert [event["message"] for event in api.events] == ["0", "1", "2", "3", "4"]


@pytest.mark.looptime
async def test_the_budget_refills_at_its_rate_up_to_the_burst() -> None:
    api = FakeApi()
    recorder = recording.EventRecorder(api, rate=1, burst=3)  # type: ignore[arg-type]
    recorder.start()
    try:
        for n in range(5):
            recorder.record(REF, type="Normal", reason="Queued", message=f"first {n}")
        await waiting.eventually(lambda: len(api.events) == 3)
        await asyncio.sleep(2)  # two more Events' worth of budget
        for n in range(3):
            recorder.record(REF, type="Normal", reason="Queued", message=f"after 2s {n}")
        await waiting.eventually(lambda: len(api.events) == 5)
        await asyncio.sleep(60)  # the budget never grows past the burst
        for n in range(5):
            recorder.record(REF, type="Normal", reason="Queued", message=f"after 60s {n}")
        await waiting.eventually(lambda: len(api.events) == 8)
    finally:
        await recorder.close()
    assert (recorder.posted, recorder.dropped) == (8, 2 + 1 + 2)
    assert [event["message"] for event in api.events] == [
        *(f"first {n}" for n in range(3)),
        *(f"after 2s {n}" for n in range(2)),
        *(f"after 60s {n}" for n in range(3)),
    ]


async def test_no_events_at_a_zero_rate_and_failures_are_counted() -> None:
    api = FakeApi()
    silent = recording.EventRecorder(api, rate=0, burst=5)  # type: ignore[arg-type]
    silent.start()
    silent.record(REF, type="Normal", reason="Queued", message="")
    await silent.close()
    assert (api.events, silent.dropped) == ([], 1)

    api.failing = True
    refused = recording.EventRecorder(api, rate=10, burst=5)  # type: ignore[arg-type]
    refused.start()
    try:
        refused.record(REF, type="Warning", reason="Failed", message="")
        await waiting.eventually(lambda: refused.failed == 1)
    finally:
        await refused.close()
