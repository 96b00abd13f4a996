"""A worker's reports about its runs: which run and attempt each is about, and the transition it asks for.

A worker reports the attempts it holds: started, completed, failed, handed back, and their log lines. A report
moves the run only if the worker holds that very attempt. Anything else is either a harmless repeat (a replay
after a reconnect, a late report of an attempt it finished, the last words about a run it was told to drop),
ignored quietly, or a mistake the worker is told about with ``v1.error``: a run the service does not know, or an
attempt that is not the worker's any more (it was given to another worker meanwhile).

A result over ``max_result_bytes`` fails its run for good: the worker is told, and nothing is retried.
"""

from __future__ import annotations

from workpath import directives, errors
from workpath_operator.service import dispatching, runs, sessions

Phase = runs.Phase


class ReportHandlers:
    """The handlers of a worker's reports, one per payload type, in front of the dispatcher."""

    def __init__(self, dispatcher: dispatching.Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._max_result_bytes = dispatcher.settings.max_result_bytes

    def starting(self, session: sessions.WorkerSession, report: directives.RoutineStarting) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is not None:
            self._dispatcher.start(run, session, started_at=report.started_at)

    def completed(self, session: sessions.WorkerSession, report: directives.RoutineCompleted, *, size: int) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is None:
            return
        self._ended(run, session, report)
        limit = self._max_result_bytes
        if size > limit:
            self._dispatcher.finish(
                run,
                Phase.FAILED,
                error=directives.ErrorInfo(
                    type=directives.ErrorType.RESULT_TOO_LARGE,
                    message=f"the result of {run.routine_id} is {size} bytes; the limit is "
                    f"{limit} (WORKPATH_MAX_RESULT_BYTES): store large data elsewhere and return a reference",
                    retryable=False,
                ),
                completed_at=report.completed_at,
            )
            raise errors.DirectiveError(
                directives.ErrorCode.RESULT_TOO_LARGE,
                f"result of run {run.run_id} is {size} bytes, over {limit}",
                in_reply_to=report.KEY,
            )
        self._dispatcher.finish(run, Phase.SUCCEEDED, result=report.result, completed_at=report.completed_at)

    def failed(self, session: sessions.WorkerSession, report: directives.RoutineFailed) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is None:
            return
        self._ended(run, session, report)
        self._dispatcher.fail(run, report.error, completed_at=report.completed_at)

    def _ended(
        self,
        run: runs.Run,
        session: sessions.WorkerSession,
        report: directives.RoutineCompleted | directives.RoutineFailed,
    ) -> None:
        """Before a final report is applied: its folded ``starting`` first, if it carries one; a run whose start
        was never reported started, as far as anyone knows, when it ended."""
        if report.started_at is not None:
            self._dispatcher.start(run, session, started_at=report.started_at)
        if run.started_at is None:
            run.started_at = report.completed_at

    def released(self, session: sessions.WorkerSession, report: directives.Released) -> None:
        run = self._held(session, report.run_id, report.attempt, report.KEY)
        if run is not None:
            message = f"worker {session.worker_id} handed it back: {report.reason}"
            self._dispatcher.requeue(run, runs.Reason.RELEASED, message)

    def log(self, session: sessions.WorkerSession, entry: directives.Log, *, size: int) -> None:
        run = session.runs.get(entry.run_id)
        if run is None:
            raise errors.DirectiveError(
                directives.ErrorCode.UNKNOWN_RUN,
                f"run {entry.run_id} is not held by worker {session.worker_id}",
                in_reply_to=entry.KEY,
            )
        self._dispatcher.log(run, entry, size=size)

    def _held(
        self, session: sessions.WorkerSession, run_id: directives.RunID, attempt: int, key: str
    ) -> runs.Run | None:
        """The run a report is about, or None for a harmless repeat; raise for a stale report."""
        run = session.runs.get(run_id)
        if run is not None and run.attempt == attempt:
            return run
        if run_id in session.disowned:
            return None  # the worker was told to drop it; its last reports of it change nothing
        known = self._dispatcher.get(run_id)
        if known is None:
            raise errors.DirectiveError(
                directives.ErrorCode.UNKNOWN_RUN, f"run {run_id} is not known to the service", in_reply_to=key
            )
        if known.phase.finished and known.attempt == attempt and known.worker == session.worker_id:
            return None  # already finished by this very attempt: a replay or a late report
        raise errors.DirectiveError(
            directives.ErrorCode.STALE_ATTEMPT,
            f"attempt {attempt} of run {run_id} is not held by worker {session.worker_id} "
            f"(current attempt {known.attempt} on {known.worker or 'no worker'}, {known.phase}); "
            f"the report is ignored",
            in_reply_to=key,
        )
