"""The directive protocol between workers and the directive service.

A directive is one JSON object ``{"payloadKey": str, "payload": object}``, one per text
frame, or several per frame (a JSON array) on a connection that negotiated
:data:`BATCHES`. Each payloadKey has one payload model here; both sides import these
models and nothing else builds directive dicts by hand.

Names say the direction: models a worker sends are accepted by
:func:`decode_from_worker`, models the service sends by :func:`decode_from_service`.
Three payloads travel both ways: a worker reports ``starting`` / ``completed`` /
``failed`` for its own runs, and the service forwards the same payloads, tagged
with the requester's ``requestID``, to a worker that asked for a sub-routine.

Decoding goes straight from the frame text into a model through a discriminated
union (one parse, no intermediate dicts); a bad frame raises
:class:`~workpath.errors.DirectiveError` with a code the service puts in ``v1.error``.
"""

from __future__ import annotations

import collections
import datetime
import enum
import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Final, Generic, Literal, NewType, TypeVar, Union

import pydantic
import pydantic.alias_generators

from workpath import errors

PROTOCOL_VERSION = "v1"

BATCHES: Final = "workpath.v1.batches"
"""The WebSocket subprotocol under which a text frame may also hold several directives, as a JSON array in order.

A worker offers it when it connects; a service that chose it may send batches too. A side that did not negotiate
it sends and reads one directive per frame (an outsider's worker written without it works the same).
"""

BATCH_CHARACTERS: Final = 32 << 10
"""The length a writer keeps a batch frame's text under (a directive that long leaves in a frame of its own)."""

BATCH_DIRECTIVES: Final = 32
"""Directives one batch frame carries at most; a reader refuses a longer batch whole. A long run of directives
leaves as several frames, so that the reader works on the first while the writer still writes the rest (a
fan-out's 1,000 requests)."""

MAX_BATCH_BYTES: Final = 4 * BATCH_CHARACTERS
"""The size in bytes over which a reader refuses a batch frame whole, unread (what a writer keeping
:data:`BATCH_CHARACTERS` can reach when every character takes four bytes)."""

RunID = NewType("RunID", str)
WorkerID = NewType("WorkerID", str)
RoutineID = NewType("RoutineID", str)
RequestID = NewType("RequestID", str)

WorkerStatus = Literal["idle", "busy", "draining"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ErrorCode(enum.StrEnum):
    """Why the service answered a directive with ``v1.error`` (its ``code``)."""

    BAD_JSON = "bad_json"
    BAD_ENVELOPE = "bad_envelope"
    UNKNOWN_DIRECTIVE = "unknown_directive"
    INVALID_PAYLOAD = "invalid_payload"
    FRAME_TOO_LARGE = "frame_too_large"
    NOT_READY = "not_ready"
    DUPLICATE_READY = "duplicate_ready"
    UNKNOWN_RUN = "unknown_run"
    STALE_ATTEMPT = "stale_attempt"
    RESULT_TOO_LARGE = "result_too_large"
    #: The worker ID announced in ``v1.ready`` is held by another identity, or is not this pod's name; the
    #: connection is closed after it.
    WORKER_ID_REFUSED = "worker_id_refused"


class ErrorType(enum.StrEnum):
    """The ``type`` of the errors workpath itself gives a run (a routine's own errors carry their class name)."""

    CANCELLED = "Cancelled"
    TIMEOUT = "TimeoutError"
    QUEUE_TIMEOUT = "QueueTimeoutError"
    RESULT_TOO_LARGE = "ResultTooLargeError"
    ROUTINE_NOT_FOUND = "RoutineNotFoundError"
    INVALID_PARAMS = "InvalidParamsError"
    INVALID_RESULT = "InvalidResultError"


def wire_name(name: str) -> str:
    """``parent_run_id`` -> ``parentRunID``: camelCase, with ``ID`` spelled as in the protocol."""
    camel = pydantic.alias_generators.to_camel(name)
    return camel[:-2] + "ID" if camel.endswith("Id") else camel


class Payload(pydantic.BaseModel):
    """Base of all payloads: camelCase on the wire, snake_case in Python."""

    model_config = pydantic.ConfigDict(
        alias_generator=wire_name,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
    )

    KEY: ClassVar[str]
    _prefix: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.__dict__.get("KEY")
        if key is not None:
            cls._prefix = f'{{"payloadKey":"{key}","payload":'


class ErrorInfo(Payload):
    """A failure as it crosses the wire."""

    type: str
    message: str
    retryable: bool = False
    delay: float | None = pydantic.Field(default=None, ge=0)
    """For a retryable failure: seconds to wait before the retry, instead of the run's backoff
    (``TemporaryError(delay=...)``)."""


class HeldRun(Payload):
    """A run a worker still holds (running, or finished and not yet confirmed)."""

    run_id: RunID
    attempt: int


# ----------------------------------------------------------------------------
# worker -> service


class Ready(Payload):
    """``v1.ready``: the first directive on every connection."""

    KEY: ClassVar[str] = "v1.ready"
    worker_id: WorkerID = pydantic.Field(min_length=1, max_length=253)
    pool: str = "default"
    routines: list[str] = pydantic.Field(min_length=1)
    slots: int = pydantic.Field(ge=1, le=10_000)
    running: list[HeldRun] = []
    version: str = PROTOCOL_VERSION


class GivePulse(Payload):
    """``v1.heartbeat.give_pulse``: the answer to a pulse check, or (``id`` None) a status change."""

    KEY: ClassVar[str] = "v1.heartbeat.give_pulse"
    id: int | None = None
    status: WorkerStatus = "idle"
    running: list[RunID] = []


class Log(Payload):
    """``v1.log``: a log line written by a routine."""

    KEY: ClassVar[str] = "v1.log"
    run_id: RunID
    level: LogLevel = "info"
    message: str
    time: datetime.datetime
    fields: dict[str, Any] = {}


class RequestSubroutine(Payload):
    """``v1.routine.request_start`` sent by a worker: a running routine asks for a sub-routine."""

    KEY: ClassVar[str] = "v1.routine.request_start"
    request_id: RequestID
    routine_id: RoutineID
    params: dict[str, Any] = {}
    parent_run_id: RunID
    timeout_seconds: float | None = pydantic.Field(default=None, gt=0)
    pool: str | None = None


class CancelSubroutine(Payload):
    """``v1.routine.cancel`` sent by a worker: a routine stopped waiting for a sub-routine it asked for.

    Sent when a ``ctx.call`` is cancelled before its answer came (``ctx.gather`` cancels the
    rest on the first failure): the child run is cancelled rather than left to run for nobody.
    """

    KEY: ClassVar[str] = "v1.routine.cancel"
    request_id: RequestID
    parent_run_id: RunID
    reason: str = "the caller stopped waiting"


class Released(Payload):
    """``v1.routine.released``: a draining worker hands back a run it will not finish."""

    KEY: ClassVar[str] = "v1.routine.released"
    run_id: RunID
    attempt: int
    reason: str = "worker draining"


# ----------------------------------------------------------------------------
# both ways


class RoutineStarting(Payload):
    """``v1.routine.starting``: a run has started on ``worker_id``.

    From a worker it reports its own run; from the service it is forwarded to the
    worker that requested the run, with that worker's ``request_id``.
    """

    KEY: ClassVar[str] = "v1.routine.starting"
    run_id: RunID
    attempt: int = 1
    request_id: RequestID | None = None
    worker_id: WorkerID
    started_at: datetime.datetime


class RoutineCompleted(Payload):
    """``v1.routine.completed``: a run finished with ``result``.

    ``started_at`` and ``worker_id`` say when and where the run started, for a start not told on its own: a
    worker folds its ``starting`` into the final report of a run that ended before that ``starting`` was written
    (the service takes the report as both), and the service gives them in every report it forwards to a
    requester (whose ``starting`` it skips when the child ends before it is written).
    """

    KEY: ClassVar[str] = "v1.routine.completed"
    run_id: RunID
    attempt: int = 1
    request_id: RequestID | None = None
    result: Any = None
    completed_at: datetime.datetime
    started_at: datetime.datetime | None = None
    worker_id: WorkerID | None = None


class RoutineFailed(Payload):
    """``v1.routine.failed``: a run failed with ``error``; ``started_at`` and ``worker_id`` as in
    :class:`RoutineCompleted`."""

    KEY: ClassVar[str] = "v1.routine.failed"
    run_id: RunID
    attempt: int = 1
    request_id: RequestID | None = None
    error: ErrorInfo
    completed_at: datetime.datetime
    started_at: datetime.datetime | None = None
    worker_id: WorkerID | None = None


# ----------------------------------------------------------------------------
# service -> worker


class CheckPulse(Payload):
    """``v1.heartbeat.check_pulse``: are you there?

    ``received`` counts the directives of this connection whose effect the service has made durable (read, and
    their runs' state written by its store), so that the worker can forget the reports it no longer needs to
    replay: a report confirmed here survives a crash of the service.
    """

    KEY: ClassVar[str] = "v1.heartbeat.check_pulse"
    id: int
    received: int = 0


class StartRoutine(Payload):
    """``v1.routine.request_start`` sent by the service: run this attempt of a run."""

    KEY: ClassVar[str] = "v1.routine.request_start"
    run_id: RunID
    routine_id: RoutineID
    params: dict[str, Any] = {}
    attempt: int = 1
    parent_run_id: RunID | None = None
    deadline: datetime.datetime | None = None


class CancelRoutine(Payload):
    """``v1.routine.cancel``: stop this run."""

    KEY: ClassVar[str] = "v1.routine.cancel"
    run_id: RunID
    reason: str


class Error(Payload):
    """``v1.error``: the service could not accept a directive."""

    KEY: ClassVar[str] = "v1.error"
    code: str
    message: str
    in_reply_to: str | None = None


FROM_WORKER: tuple[type[Payload], ...] = (
    Ready,
    GivePulse,
    Log,
    RequestSubroutine,
    RoutineStarting,
    RoutineCompleted,
    RoutineFailed,
    Released,
    CancelSubroutine,
)
FROM_SERVICE: tuple[type[Payload], ...] = (
    CheckPulse,
    StartRoutine,
    RoutineStarting,
    RoutineCompleted,
    RoutineFailed,
    CancelRoutine,
    Error,
)

K = TypeVar("K")
P = TypeVar("P", bound=Payload)


class _Envelope(pydantic.BaseModel, Generic[K, P]):  # noqa: UP046 - a pydantic generic with bound TypeVars
    payloadKey: K  # the wire name
    payload: P


class _Direction:
    """The directives one side accepts, as one discriminated union."""

    def __init__(self, members: tuple[type[Payload], ...], origin: str) -> None:
        envelopes = tuple(_Envelope[Literal[m.KEY], m] for m in members)  # type: ignore[name-defined, valid-type]
        union = Annotated[Union[envelopes], pydantic.Field(discriminator="payloadKey")]  # type: ignore[valid-type]  # noqa: UP007
        self.adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(union)
        self.batch: pydantic.TypeAdapter[list[Any]] = pydantic.TypeAdapter(list[union])
        # The adapters' validators called directly: their Python wrappers cost ~0.2 µs a frame.
        self.validate_json = self.adapter.validator.validate_json
        self.validate_batch = self.batch.validator.validate_json
        self.origin = origin
        self.keys = ", ".join(sorted({m.KEY for m in members}))


_FROM_WORKER = _Direction(FROM_WORKER, "from a worker")
_FROM_SERVICE = _Direction(FROM_SERVICE, "from the service")


def decoder(members: tuple[type[Payload], ...], *, origin: str) -> Callable[[str | bytes], Payload]:
    """A decoder of frames carrying ``members``: another protocol in this style (the clients',
    :mod:`workpath.clients.frames`), with the same envelope, one parse and the same DirectiveError."""
    direction = _Direction(members, origin)

    def decode(frame: str | bytes) -> Payload:
        return _decode(direction, frame)

    return decode


def encode(payload: Payload) -> str:
    """The frame text for one directive (pydantic's serializer called directly: ``model_dump_json`` around it
    costs half as much again, on every directive)."""
    return payload._prefix + payload.__pydantic_serializer__.to_json(payload).decode() + "}"


def decode_from_worker(frame: str | bytes) -> Payload:
    """Decode a frame a worker sent; raise :class:`DirectiveError` when it is not acceptable."""
    return _decode(_FROM_WORKER, frame)


def decode_from_service(frame: str | bytes) -> Payload:
    """Decode a frame the service sent; raise :class:`DirectiveError` when it is not acceptable."""
    return _decode(_FROM_SERVICE, frame)


def encode_batch(frames: list[str]) -> str:
    """One batch frame holding the encoded directives ``frames``, in order (see :data:`BATCHES`)."""
    return "[" + ",".join(frames) + "]"


def next_frame(frames: collections.deque[str]) -> str:
    """The next frame to write for the encoded directives queued in ``frames`` (taken from it): a batch of those
    at its head, at most :data:`BATCH_DIRECTIVES` and under :data:`BATCH_CHARACTERS`, or one directive alone when
    it is the only one or too long to share a frame."""
    first = frames.popleft()
    if not frames or len(first) >= BATCH_CHARACTERS:
        return first
    batch = [first]
    size = len(first) + 2
    while frames and len(batch) < BATCH_DIRECTIVES and size + len(frames[0]) < BATCH_CHARACTERS:
        frame = frames.popleft()
        batch.append(frame)
        size += len(frame) + 1
    return encode_batch(batch) if len(batch) > 1 else first


def is_batch(frame: str | bytes) -> bool:
    """Whether a frame read under :data:`BATCHES` holds a batch (a JSON array) rather than one directive."""
    return frame[:1] in _ARRAY_STARTS


_ARRAY_STARTS: Final = (b"[", "[")
_EMPTY_BATCH: Final = "a batch frame is a JSON array of one directive or more"


def decode_batch_from_worker(frame: str | bytes) -> list[Payload | errors.DirectiveError]:
    """The directives of a batch frame a worker sent, in order; each one not acceptable is its DirectiveError."""
    return _decode_batch(_FROM_WORKER, frame)


def decode_batch_from_service(frame: str | bytes) -> list[Payload | errors.DirectiveError]:
    """The directives of a batch frame the service sent, in order; each one not acceptable is its DirectiveError."""
    return _decode_batch(_FROM_SERVICE, frame)


def _decode_batch(direction: _Direction, frame: str | bytes) -> list[Payload | errors.DirectiveError]:
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
    if size > MAX_BATCH_BYTES:
        return [_refused_batch(f"a batch frame of {size} bytes is over the {MAX_BATCH_BYTES}-byte limit")]
    try:
        envelopes = direction.validate_batch(frame)
    except pydantic.ValidationError:
        return _decode_each(direction, frame)
    if not envelopes:
        return [errors.DirectiveError(ErrorCode.BAD_ENVELOPE, _EMPTY_BATCH)]
    if len(envelopes) > BATCH_DIRECTIVES:
        return [_refused_batch(f"a batch of {len(envelopes)} directives is over the limit of {BATCH_DIRECTIVES}")]
    return [envelope.payload for envelope in envelopes]


def _decode_each(direction: _Direction, frame: str | bytes) -> list[Payload | errors.DirectiveError]:
    """A batch with something wrong in it, one directive at a time: the good ones are taken, each bad one is
    answered with its own error. Each is parsed again alone, so that it meets the limits a lone frame meets."""
    try:
        items = json.loads(frame)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        return [errors.DirectiveError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}")]
    if not isinstance(items, list) or not items:
        return [errors.DirectiveError(ErrorCode.BAD_ENVELOPE, _EMPTY_BATCH)]
    if len(items) > BATCH_DIRECTIVES:
        return [_refused_batch(f"a batch of {len(items)} directives is over the limit of {BATCH_DIRECTIVES}")]
    decoded: list[Payload | errors.DirectiveError] = []
    for item in items:
        try:
            decoded.append(_decode(direction, json.dumps(item)))
        except errors.DirectiveError as exc:
            decoded.append(exc)
    return decoded


def _refused_batch(why: str) -> errors.DirectiveError:
    return errors.DirectiveError(ErrorCode.FRAME_TOO_LARGE, f"{why}: none of its directives was taken")


def _decode(direction: _Direction, frame: str | bytes) -> Payload:
    try:
        envelope = direction.validate_json(frame)
    except pydantic.ValidationError as exc:
        raise _explain(exc, direction) from None
    payload: Payload = envelope.payload
    return payload


def _explain(exc: pydantic.ValidationError, direction: _Direction) -> errors.DirectiveError:
    problems = exc.errors(include_url=False, include_input=False)
    first = problems[0]
    kind = first["type"]
    if kind == "json_invalid":
        return errors.DirectiveError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {first['msg']}")
    if kind == "union_tag_invalid":
        tag = str(first.get("ctx", {}).get("tag", "?"))
        return errors.DirectiveError(
            ErrorCode.UNKNOWN_DIRECTIVE,
            f"unknown payloadKey {tag!r} {direction.origin}; expected one of: {direction.keys}",
            in_reply_to=tag,
        )
    loc = first["loc"]
    if kind == "union_tag_not_found" or len(loc) < 2:
        return errors.DirectiveError(
            ErrorCode.BAD_ENVELOPE, 'a directive must be a JSON object {"payloadKey": str, "payload": object}'
        )
    tag = str(loc[0])
    details = "; ".join(
        f"{'.'.join(str(part) for part in p['loc'][2:]) or 'payload'}: {p['msg']}" for p in problems[:5]
    )
    return errors.DirectiveError(ErrorCode.INVALID_PAYLOAD, f"invalid {tag} payload: {details}", in_reply_to=tag)


def now() -> datetime.datetime:
    """The current time, timezone-aware UTC (what every timestamp on the wire is)."""
    return datetime.datetime.now(datetime.UTC)
