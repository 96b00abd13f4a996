"""Batch frames (the ``workpath.v1.batches`` subprotocol): queued directives leave grouped in order, within the
directive and length caps; a batch decodes to its directives in order, each bad one to its own DirectiveError."""

from __future__ import annotations

import collections
import datetime
import json

import pytest

from workpath import directives, errors

NOW = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.UTC)
RUN = directives.RunID("r-1")


def log(n: int, *, chars: int = 10) -> directives.Log:
    """The ``n``-th log line of a run, with a message of ``chars`` characters."""
    return directives.Log(run_id=RUN, message="m" * chars, time=NOW, fields={"n": n})


def grouped(payloads: list[directives.Payload]) -> tuple[list[str], collections.deque[str]]:
    """The frames a writer writes for ``payloads`` queued at once, and the queue afterwards."""
    queue = collections.deque(directives.encode(payload) for payload in payloads)
    frames = []
    while queue:
        frames.append(directives.next_frame(queue))
    return frames, queue


def contents(frame: str) -> list[directives.Payload | errors.DirectiveError]:
    """The directives of a frame as the service reads it: a batch, or one directive."""
    if directives.is_batch(frame):
        return directives.decode_batch_from_worker(frame)
    return [directives.decode_from_worker(frame)]


def test_a_lone_directive_leaves_unwrapped() -> None:
    frames, queue = grouped([log(1)])
    assert frames == [directives.encode(log(1))]
    assert not directives.is_batch(frames[0])
    assert not queue


def test_a_long_run_of_directives_leaves_as_frames_of_at_most_32_in_order() -> None:
    sent: list[directives.Payload] = [log(n) for n in range(70)]
    frames, queue = grouped(sent)
    assert all(directives.is_batch(frame) for frame in frames)
    decoded = [contents(frame) for frame in frames]
    assert [len(batch) for batch in decoded] == [directives.BATCH_DIRECTIVES, directives.BATCH_DIRECTIVES, 6]
    assert [payload for batch in decoded for payload in batch] == sent
    assert not queue


def test_a_directive_too_large_to_share_a_frame_leaves_alone_between_batches_in_order() -> None:
    big = log(2, chars=directives.BATCH_CHARACTERS)
    sent: list[directives.Payload] = [log(0), log(1), big, log(3), log(4)]
    frames, queue = grouped(sent)
    assert len(frames) == 3
    assert directives.is_batch(frames[0]) and directives.is_batch(frames[2])
    assert frames[1] == directives.encode(big)  # as it is, not wrapped in an array
    assert [payload for frame in frames for payload in contents(frame)] == sent
    assert not queue


def test_a_directive_left_alone_by_a_large_neighbour_is_written_unwrapped() -> None:
    big = log(1, chars=directives.BATCH_CHARACTERS)
    sent: list[directives.Payload] = [log(0), big, log(2)]
    frames, queue = grouped(sent)
    assert frames == [directives.encode(payload) for payload in sent]
    assert not queue


def test_the_length_cap_splits_a_run_of_mid_size_directives() -> None:
    sent: list[directives.Payload] = [log(n, chars=5000) for n in range(20)]
    frames, queue = grouped(sent)
    assert len(frames) > 20 * 5000 // directives.BATCH_CHARACTERS  # split by size, far below 32 directives a frame
    assert all(len(frame) < directives.BATCH_CHARACTERS for frame in frames)
    assert all(directives.is_batch(frame) for frame in frames[:-1])
    assert [payload for frame in frames for payload in contents(frame)] == sent
    assert not queue


def test_a_valid_batch_round_trips() -> None:
    sent: list[directives.Payload] = [
        directives.RoutineStarting(run_id=RUN, worker_id=directives.WorkerID("w-1"), started_at=NOW),
        log(1),
        directives.RoutineCompleted(run_id=RUN, result={"rows": [1, 2]}, completed_at=NOW),
    ]
    frame = directives.encode_batch([directives.encode(payload) for payload in sent])
    assert directives.is_batch(frame) and directives.is_batch(frame.encode())
    assert directives.decode_batch_from_worker(frame) == sent
    assert directives.decode_batch_from_worker(frame.encode()) == sent


def test_each_bad_directive_of_a_batch_is_its_own_error_in_its_place() -> None:
    first = log(1)
    last = directives.RoutineCompleted(run_id=RUN, result="ok", completed_at=NOW)
    frame = directives.encode_batch(
        [
            directives.encode(first),
            '{"payloadKey": "v1.teleport", "payload": {}}',
            '{"payloadKey": "v1.routine.starting", "payload": {"runID": 5}}',
            "7",
            directives.encode(last),
        ]
    )
    decoded = directives.decode_batch_from_worker(frame)
    assert len(decoded) == 5
    assert (decoded[0], decoded[4]) == (first, last)
    refused = decoded[1:4]
    assert all(isinstance(item, errors.DirectiveError) for item in refused)
    assert [(item.code, item.in_reply_to) for item in refused if isinstance(item, errors.DirectiveError)] == [
        (directives.ErrorCode.UNKNOWN_DIRECTIVE, "v1.teleport"),
        (directives.ErrorCode.INVALID_PAYLOAD, "v1.routine.starting"),
        (directives.ErrorCode.BAD_ENVELOPE, None),
    ]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[]", directives.ErrorCode.BAD_ENVELOPE),
        ("[1,2", directives.ErrorCode.BAD_JSON),
        ("[" * 5000, directives.ErrorCode.BAD_JSON),
        ("[" * 5000 + "]" * 5000, directives.ErrorCode.BAD_JSON),
    ],
    ids=["empty", "unterminated", "deep-unterminated", "deep-nested"],
)
def test_a_batch_that_is_not_a_list_of_directives_is_one_error(frame: str, code: str) -> None:
    assert directives.is_batch(frame)
    decoded = directives.decode_batch_from_worker(frame)
    assert len(decoded) == 1
    (error,) = decoded
    assert isinstance(error, errors.DirectiveError)
    assert error.code == code
    assert error.message


def test_a_batch_from_the_service_round_trips() -> None:
    sent: list[directives.Payload] = [
        directives.StartRoutine(
            run_id=RUN, routine_id=directives.RoutineID("reports.build"), params={"month": "2026-10"}, deadline=NOW
        ),
        directives.CheckPulse(id=3, received=10),
    ]
    frames, queue = grouped(sent)
    assert len(frames) == 1 and not queue
    assert json.loads(frames[0])[1]["payloadKey"] == "v1.heartbeat.check_pulse"
    assert directives.decode_batch_from_service(frames[0]) == sent


def test_a_batch_over_the_directive_cap_is_refused_whole() -> None:
    frame = directives.encode_batch([directives.encode(log(n)) for n in range(directives.BATCH_DIRECTIVES + 1)])
    (refusal,) = directives.decode_batch_from_worker(frame)
    assert isinstance(refusal, errors.DirectiveError)
    assert refusal.code == directives.ErrorCode.FRAME_TOO_LARGE
    assert f"over the limit of {directives.BATCH_DIRECTIVES}" in str(refusal)


@pytest.mark.parametrize("item", ["1", '{"payloadKey": "v1.nope", "payload": {}}'])
def test_a_batch_of_many_bad_directives_is_refused_whole_not_answered_one_by_one(item: str) -> None:
    """A worker cannot make the service answer (and log) thousands of errors for one frame."""
    frame = "[" + ",".join([item] * 2_000) + "]"
    assert len(frame.encode()) <= directives.MAX_BATCH_BYTES
    (refusal,) = directives.decode_batch_from_worker(frame)
    assert isinstance(refusal, errors.DirectiveError) and refusal.code == directives.ErrorCode.FRAME_TOO_LARGE


def test_a_batch_frame_over_the_byte_cap_is_refused_unread() -> None:
    frame = directives.encode_batch([directives.encode(log(0, chars=directives.MAX_BATCH_BYTES))])
    (refusal,) = directives.decode_batch_from_worker(frame)
    assert isinstance(refusal, errors.DirectiveError) and refusal.code == directives.ErrorCode.FRAME_TOO_LARGE
    assert f"over the {directives.MAX_BATCH_BYTES}-byte limit" in str(refusal)


def test_a_directive_in_a_batch_meets_the_nesting_limit_of_a_lone_frame() -> None:
    """Nesting a lone frame's parser refuses is refused inside a batch too (where it is parsed again alone)."""
    deep = "[" * 300 + "]" * 300
    alone = '{"payloadKey":"v1.routine.completed","payload":{"runID":"r-1","completedAt":"2026-11-25T12:00:00Z",'
    alone += f'"result":{deep}}}}}'
    with pytest.raises(errors.DirectiveError) as refused_alone:
        directives.decode_from_worker(alone)
    good = directives.encode(log(1))
    decoded = directives.decode_batch_from_worker(f"[{good},{alone}]")
    assert decoded[0] == log(1)
    assert isinstance(decoded[1], errors.DirectiveError) and decoded[1].code == refused_alone.value.code
