"""The protocol models: every directive survives a round trip; every malformed frame gets a clear error."""

from __future__ import annotations

import datetime
import json

import pytest

from workpath import directives, errors

NOW = datetime.datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=datetime.UTC)

FROM_WORKER_SAMPLES: list[directives.Payload] = [
    directives.Ready(
        worker_id=directives.WorkerID("w-1"),
        pool="gpu",
        routines=["reports.*", "mail.send"],
        slots=4,
        running=[directives.HeldRun(run_id=directives.RunID("r-1"), attempt=2)],
    ),
    directives.GivePulse(id=7, status="busy", running=[directives.RunID("r-1")]),
    directives.GivePulse(status="draining"),
    directives.Log(run_id=directives.RunID("r-1"), level="warning", message="hi", time=NOW, fields={"n": 1}),
    directives.RequestSubroutine(
        request_id=directives.RequestID("q-1"),
        routine_id=directives.RoutineID("reports.part"),
        params={"n": 1},
        parent_run_id=directives.RunID("r-1"),
        timeout_seconds=3.5,
        pool="default",
    ),
    directives.RoutineStarting(
        run_id=directives.RunID("r-1"), attempt=2, worker_id=directives.WorkerID("w-1"), started_at=NOW
    ),
    directives.RoutineCompleted(run_id=directives.RunID("r-1"), attempt=2, result={"rows": [1, 2]}, completed_at=NOW),
    directives.RoutineFailed(
        run_id=directives.RunID("r-1"),
        attempt=1,
        error=directives.ErrorInfo(type="ValueError", message="bad month", retryable=False),
        completed_at=NOW,
    ),
    directives.Released(run_id=directives.RunID("r-1"), attempt=1),
    directives.CancelSubroutine(request_id=directives.RequestID("q-1"), parent_run_id=directives.RunID("r-1")),
]

FROM_SERVICE_SAMPLES: list[directives.Payload] = [
    directives.CheckPulse(id=3, received=10),
    directives.StartRoutine(
        run_id=directives.RunID("r-1"),
        routine_id=directives.RoutineID("reports.build"),
        params={"month": "2026-10"},
        attempt=1,
        parent_run_id=None,
        deadline=NOW,
    ),
    directives.RoutineStarting(
        run_id=directives.RunID("r-2"),
        request_id=directives.RequestID("q-1"),
        worker_id=directives.WorkerID("w-2"),
        started_at=NOW,
    ),
    directives.RoutineCompleted(
        run_id=directives.RunID("r-2"), request_id=directives.RequestID("q-1"), result=[1, "two"], completed_at=NOW
    ),
    directives.RoutineFailed(
        run_id=directives.RunID("r-2"),
        request_id=directives.RequestID("q-1"),
        error=directives.ErrorInfo(type="TimeoutError", message="late", retryable=True),
        completed_at=NOW,
    ),
    directives.CancelRoutine(run_id=directives.RunID("r-1"), reason="deleted"),
    directives.Error(code="unknown_run", message="no such run", in_reply_to="v1.routine.completed"),
]


@pytest.mark.parametrize("payload", FROM_WORKER_SAMPLES, ids=lambda p: type(p).__name__)
def test_every_worker_directive_round_trips(payload: directives.Payload) -> None:
    frame = directives.encode(payload)
    assert json.loads(frame)["payloadKey"] == payload.KEY
    assert directives.decode_from_worker(frame) == payload
    assert directives.decode_from_worker(frame.encode()) == payload


@pytest.mark.parametrize("payload", FROM_SERVICE_SAMPLES, ids=lambda p: type(p).__name__)
def test_every_service_directive_round_trips(payload: directives.Payload) -> None:
    frame = directives.encode(payload)
    assert directives.decode_from_service(frame) == payload


def test_every_payload_key_of_the_design_has_a_model() -> None:
    keys = {m.KEY for m in directives.FROM_WORKER} | {m.KEY for m in directives.FROM_SERVICE}
    assert keys >= {
        "v1.ready",
        "v1.heartbeat.check_pulse",
        "v1.heartbeat.give_pulse",
        "v1.log",
        "v1.routine.request_start",
        "v1.routine.starting",
        "v1.routine.completed",
        "v1.routine.failed",
        "v1.routine.cancel",
        "v1.error",
    }


def test_wire_names_use_the_protocol_spelling() -> None:
    frame = json.loads(directives.encode(FROM_WORKER_SAMPLES[4]))
    assert set(frame) == {"payloadKey", "payload"}
    assert {"requestID", "routineID", "parentRunID", "timeoutSeconds"} <= set(frame["payload"])


@pytest.mark.parametrize(
    ("frame", "code", "in_reply_to", "says"),
    [
        ("{not json", directives.ErrorCode.BAD_JSON, None, "not valid JSON"),
        ("", directives.ErrorCode.BAD_JSON, None, "not valid JSON"),
        ("[1, 2]", directives.ErrorCode.BAD_ENVELOPE, None, "payloadKey"),
        ('"v1.ready"', directives.ErrorCode.BAD_ENVELOPE, None, "payloadKey"),
        ('{"payload": {}}', directives.ErrorCode.BAD_ENVELOPE, None, "payloadKey"),
        ('{"payloadKey": 3, "payload": {}}', directives.ErrorCode.UNKNOWN_DIRECTIVE, "3", "unknown payloadKey"),
        ('{"payloadKey": "v1.nope", "payload": {}}', directives.ErrorCode.UNKNOWN_DIRECTIVE, "v1.nope", "v1.ready"),
        (
            '{"payloadKey": "v1.heartbeat.check_pulse", "payload": {"id": 1}}',
            directives.ErrorCode.UNKNOWN_DIRECTIVE,
            "v1.heartbeat.check_pulse",
            "from a worker",
        ),
        ('{"payloadKey": "v1.ready"}', directives.ErrorCode.INVALID_PAYLOAD, "v1.ready", "payload"),
        ('{"payloadKey": "v1.ready", "payload": []}', directives.ErrorCode.INVALID_PAYLOAD, "v1.ready", "payload"),
        (
            '{"payloadKey": "v1.ready", "payload": {"workerID": "w", "routines": ["a"], "slots": 0}}',
            directives.ErrorCode.INVALID_PAYLOAD,
            "v1.ready",
            "slots",
        ),
        (
            '{"payloadKey": "v1.ready", "payload": {"workerID": "w", "routines": [], "slots": 1}}',
            directives.ErrorCode.INVALID_PAYLOAD,
            "v1.ready",
            "routines",
        ),
        (
            '{"payloadKey": "v1.routine.completed", "payload": {"runID": "r"}}',
            directives.ErrorCode.INVALID_PAYLOAD,
            "v1.routine.completed",
            "completedAt",
        ),
        (
            '{"payloadKey": "v1.routine.starting", "payload": {"runID": "r", "workerID": "w", "startedAt": "soon"}}',
            directives.ErrorCode.INVALID_PAYLOAD,
            "v1.routine.starting",
            "startedAt",
        ),
        (
            '{"payloadKey": "v1.log", "payload": {"runID": "r", "message": "m", "time": "2026-01-01T00:00:00Z", '
            '"level": "loud"}}',
            directives.ErrorCode.INVALID_PAYLOAD,
            "v1.log",
            "level",
        ),
    ],
)
def test_malformed_frames_from_a_worker_get_a_typed_error(
    frame: str, code: str, in_reply_to: str | None, says: str
) -> None:
    with pytest.raises(errors.DirectiveError) as caught:
        directives.decode_from_worker(frame)
    assert caught.value.code == code
    assert caught.value.in_reply_to == in_reply_to
    assert says in caught.value.message


def test_a_worker_directive_is_not_accepted_by_a_worker() -> None:
    frame = directives.encode(FROM_WORKER_SAMPLES[0])
    with pytest.raises(errors.DirectiveError) as caught:
        directives.decode_from_service(frame)
    assert caught.value.code == directives.ErrorCode.UNKNOWN_DIRECTIVE


def test_cancel_means_different_things_in_each_direction() -> None:
    to_worker = directives.decode_from_service(directives.encode(FROM_SERVICE_SAMPLES[5]))
    from_worker = directives.decode_from_worker(directives.encode(FROM_WORKER_SAMPLES[-1]))
    assert type(to_worker) is directives.CancelRoutine
    assert type(from_worker) is directives.CancelSubroutine


def test_request_start_means_different_things_in_each_direction() -> None:
    to_worker = directives.decode_from_service(directives.encode(FROM_SERVICE_SAMPLES[1]))
    from_worker = directives.decode_from_worker(directives.encode(FROM_WORKER_SAMPLES[4]))
    assert type(to_worker) is directives.StartRoutine
    assert type(from_worker) is directives.RequestSubroutine
    assert to_worker.KEY == from_worker.KEY == "v1.routine.request_start"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    frame = '{"payloadKey": "v1.heartbeat.give_pulse", "payload": {"id": 1, "status": "idle", "cpu": 0.5}}'
    assert directives.decode_from_worker(frame) == directives.GivePulse(id=1, status="idle")
