"""The clients' protocol: run specs and statuses as clients see them, and the frames of ``/v1/clients``.

A client program (:class:`workpath.Client`) holds one WebSocket to the service's ``/v1/clients`` and multiplexes
every run it submits or awaits over it. Frames are in the directives' style (:mod:`workpath.directives`): one JSON
text frame ``{"payloadKey": str, "payload": object}``, one pydantic model per payloadKey, camelCase on the wire.

Client -> service; every request carries a ``requestID`` the client chose (an integer, unique among its requests
not yet answered on this connection), which the answers repeat:

- ``v1.client.submit``: runs to start, many in one frame (``runs``: ``[{requestID, spec}]``);
- ``v1.client.await``: runs to be told the outcome of, by run ID (after a reconnect, or from another process);
- ``v1.client.cancel``, ``v1.client.read``: cancel a run / read its status.

Service -> client:

- ``v1.client.accepted``: one per ``submit``: each run's run ID (and Routine in operator mode), or why it was
  refused (``error``: params over the limit, a Routine that could not be created);
- ``v1.client.finished``: outcomes of runs submitted or awaited on this connection, as many as are ready when
  the service writes (phase, result or error);
- ``v1.client.status``: the answer to ``read`` and ``cancel``;
- ``v1.client.error``: a frame that could not be accepted (bad JSON, unknown payloadKey, over the frame limit,
  refused by RBAC, an unknown run), naming the request IDs it answers when it could read them.

Every run submitted or awaited counts as *in flight* on its connection until its outcome is sent; over the
service's limit the service stops reading the connection until outcomes bring it back under (backpressure: the
client's writes wait, nothing is dropped).
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable
from typing import Any, ClassVar

import pydantic
import pydantic_core

from workpath import directives


class Phase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})


class Retries(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        alias_generator=directives.wire_name, validate_by_name=True, frozen=True, extra="forbid"
    )

    limit: int = pydantic.Field(default=0, ge=0)
    backoff_seconds: float = pydantic.Field(default=5.0, ge=0)


class RunSpec(pydantic.BaseModel):
    """What is asked for: the ``spec`` of a Routine, the body of ``POST /v1/runs``, a run a client submits."""

    model_config = pydantic.ConfigDict(
        alias_generator=directives.wire_name,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="forbid",
    )

    routine_id: directives.RoutineID = pydantic.Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", max_length=253
    )
    params: dict[str, Any] = pydantic.Field(default_factory=dict)  # a factory: a shared {} would be deep-copied
    pool: str | None = None
    priority: int = 0
    timeout_seconds: float | None = pydantic.Field(default=None, gt=0)
    retries: Retries = Retries()
    ttl_seconds_after_finished: int | None = pydantic.Field(default=None, ge=0)


class Subroutines(pydantic.BaseModel):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0


class RunStatus(pydantic.BaseModel):
    """A run as users see it: the Routine's ``status`` and the local API's answer."""

    model_config = pydantic.ConfigDict(
        alias_generator=directives.wire_name, validate_by_name=True, serialize_by_alias=True
    )

    phase: Phase
    run_id: directives.RunID
    routine_id: directives.RoutineID
    attempt: int = 0
    worker: str | None = None
    created_at: datetime.datetime
    started_at: datetime.datetime | None = None
    completed_at: datetime.datetime | None = None
    run_time_seconds: float | None = None
    round_trip_seconds: float | None = None
    result: Any = None
    error: directives.ErrorInfo | None = None
    parent_run_id: directives.RunID | None = None
    subroutines: Subroutines | None = None
    reason: str = ""
    message: str = ""


class ErrorCode(enum.StrEnum):
    """The ``code`` of ``v1.client.error`` beyond the directives' own (bad_json, unknown_directive, ...)."""

    FORBIDDEN = "forbidden"
    UNKNOWN_RUN = "unknown_run"


class ErrorType(enum.StrEnum):
    """The ``type`` of a refused submission (its ``error`` in ``v1.client.accepted``)."""

    PARAMS_TOO_LARGE = "ParamsTooLargeError"
    NOT_SUBMITTED = "NotSubmittedError"


class RoutineRef(directives.Payload):
    """The Routine a run is (operator mode)."""

    namespace: str
    name: str


# ----------------------------------------------------------------------------
# client -> service


class Submission(directives.Payload):
    request_id: int
    spec: RunSpec


class Submit(directives.Payload):
    """``v1.client.submit``: start these runs; each is answered in ``accepted``, then in ``finished``."""

    KEY: ClassVar[str] = "v1.client.submit"
    runs: list[Submission] = pydantic.Field(min_length=1)


class AwaitedRun(directives.Payload):
    request_id: int
    run_id: directives.RunID


class Await(directives.Payload):
    """``v1.client.await``: tell me the outcome of these runs (``finished``); an unknown one gets ``error``."""

    KEY: ClassVar[str] = "v1.client.await"
    runs: list[AwaitedRun] = pydantic.Field(min_length=1)


class Cancel(directives.Payload):
    """``v1.client.cancel``: cancel a run (and its sub-routines); answered with its ``status``."""

    KEY: ClassVar[str] = "v1.client.cancel"
    request_id: int
    run_id: directives.RunID
    reason: str = "cancelled by a client"


class Read(directives.Payload):
    """``v1.client.read``: the run's status, answered with ``status``."""

    KEY: ClassVar[str] = "v1.client.read"
    request_id: int
    run_id: directives.RunID


# ----------------------------------------------------------------------------
# service -> client


class Admission(directives.Payload):
    """A submitted run: its run ID (and Routine), or why it was not submitted."""

    request_id: int
    run_id: directives.RunID | None = None
    routine: RoutineRef | None = None
    error: directives.ErrorInfo | None = None


class Accepted(directives.Payload):
    """``v1.client.accepted``: the answer to one ``submit``, entry by entry."""

    KEY: ClassVar[str] = "v1.client.accepted"
    runs: list[Admission]


class Outcome(directives.Payload):
    """How a run submitted or awaited on this connection ended."""

    request_id: int
    run_id: directives.RunID
    phase: Phase
    result: Any = None
    error: directives.ErrorInfo | None = None
    #: The run's routine ID, when it did not succeed (for the error's message).
    routine_id: directives.RoutineID | None = None


class Finished(directives.Payload):
    """``v1.client.finished``: the outcomes ready when the service wrote (built by :func:`encode_finished`)."""

    KEY: ClassVar[str] = "v1.client.finished"
    runs: list[Outcome]


class Status(directives.Payload):
    """``v1.client.status``: the answer to ``read`` and ``cancel``."""

    KEY: ClassVar[str] = "v1.client.status"
    request_id: int
    status: RunStatus
    routine: RoutineRef | None = None


class Error(directives.Payload):
    """``v1.client.error``: a frame not accepted; ``request_ids`` are the requests it answers (if read)."""

    KEY: ClassVar[str] = "v1.client.error"
    code: str
    message: str
    request_ids: list[int] = []
    in_reply_to: str | None = None


FROM_CLIENT: tuple[type[directives.Payload], ...] = (Submit, Await, Cancel, Read)
FROM_SERVICE: tuple[type[directives.Payload], ...] = (Accepted, Finished, Status, Error)

#: Decode a frame a client sent / the service sent; both raise :class:`~workpath.errors.DirectiveError`.
decode_from_client = directives.decoder(FROM_CLIENT, origin="from a client")
decode_from_service = directives.decoder(FROM_SERVICE, origin="from the service")

# ----------------------------------------------------------------------------
# encoding the frames sent by the thousand: one encoding per run, frames joined around them


def _head(payload: directives.Payload) -> str:
    """The text of ``payload``'s frame up to its list's ``[`` (its only field is that list, empty here)."""
    head, _, _ = directives.encode(payload).rpartition("]")
    return head


_SUBMIT_HEAD = '{"payloadKey":"' + Submit.KEY + '","payload":{"runs":['
_ACCEPTED_HEAD = _head(Accepted(runs=[]))
_FINISHED_HEAD = _head(Finished(runs=[]))
_SUCCEEDED = Phase.SUCCEEDED.value


def encode_spec(spec: RunSpec) -> str:
    """A spec as it travels in ``submit``, without the fields left at their defaults (a no-op run is
    ``{"routineID":"bench.noop"}``): smaller frames, read faster. Encode a spec submitted many times once."""
    return spec.model_dump_json(exclude_defaults=True)


def encode_submit(submissions: Iterable[tuple[int, str]]) -> str:
    """One ``v1.client.submit`` frame of ``(request ID, encode_spec(spec))`` pairs."""
    return (
        _SUBMIT_HEAD
        + ",".join(f'{{"requestID":{request_id},"spec":{spec}}}' for request_id, spec in submissions)
        + "]}}"
    )


def encode_admission(request_id: int, run_id: str) -> str:
    """An accepted run, as an item of :func:`encode_accepted` (a refused one: ``Admission(...).model_dump_json()``)."""
    return pydantic_core.to_json({"requestID": request_id, "runID": run_id}).decode()


def encode_accepted(admissions: Iterable[str]) -> str:
    """One ``v1.client.accepted`` frame of admissions each already encoded."""
    return _ACCEPTED_HEAD + ",".join(admissions) + "]}}"


def encode_succeeded(request_id: int, run_id: str, result: Any) -> str:
    """The outcome of a run that succeeded, as an item of :func:`encode_finished` (other outcomes:
    ``Outcome(...).model_dump_json()``); its result is encoded here, once."""
    return pydantic_core.to_json(
        {"requestID": request_id, "runID": run_id, "phase": _SUCCEEDED, "result": result}
    ).decode()


def encode_finished(outcomes: Iterable[str]) -> str:
    """One ``v1.client.finished`` frame of outcomes each already encoded, when its run finished: the frame costs
    a join, not a second encoding of every result."""
    return _FINISHED_HEAD + ",".join(outcomes) + "]}}"
