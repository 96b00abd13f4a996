"""What the commands print: tables as kubectl lays them out, descriptions, a fan-out's progress, JSON and YAML.

Tables and progress are rich's (the ``operator`` extra; the commands import this module only once they print, so
the worker image, without rich, still lists them). A console that is not a terminal gets wide lines, never wrapped
or cut, as kubectl's output is, so that scripts can read them (better: ``-o json``).
"""

from __future__ import annotations

import datetime
import json
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import rich.console
import rich.padding
import rich.progress
import rich.table
import rich.text
import yaml

from workpath import directives
from workpath_operator.service import stores

Body = Mapping[str, Any]

#: The columns of ``workpath get``: runs of the local service, and Routines (with NAMESPACE first with -A).
RUN_COLUMNS = ("RUN ID", "ROUTINE", "PHASE", "WORKER", "RUN TIME", "ROUND TRIP", "AGE")
ROUTINE_COLUMNS = ("NAME", *RUN_COLUMNS[1:])
WORKER_COLUMNS = ("ID", "POOL", "SLOTS", "BUSY", "CONNECTED", "DRAINING", "LAST PULSE")
#: Characters per line when the output is not a terminal: lines are never wrapped nor cut.
PIPE_WIDTH = 400


def console(*, stderr: bool = False) -> rich.console.Console:
    """A console on stdout (stderr): a terminal's width, or :data:`PIPE_WIDTH` when piped."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return rich.console.Console(file=stream, width=width, highlight=False, soft_wrap=False)


def show(output: rich.console.Console, *renderables: Any) -> None:
    """Print ``renderables``; when piped, without the spaces rich pads the last column with."""
    if output.is_terminal:
        output.print(*renderables)
        return
    with output.capture() as captured:
        output.print(*renderables)
    lines = captured.get().splitlines()
    output.file.write("".join(line.rstrip() + "\n" for line in lines))
    output.file.flush()


def dump(value: object, output: str) -> str:
    """``value`` as ``-o json`` or ``-o yaml`` prints it."""
    if output == "yaml":
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n")
    return json.dumps(value, indent=2)


def listing(items: Sequence[object], *, api_version: str | None = None) -> dict[str, Any]:
    """Many objects in one document, as kubectl prints them: a ``List`` of ``items``."""
    head = {"apiVersion": api_version} if api_version else {}
    return head | {"kind": "List", "items": list(items)}


# ---------------------------------------------------------------------- tables


def table(columns: Sequence[str], rows: Iterable[Sequence[str]], *, header: bool = True) -> rich.table.Table:
    """kubectl's layout: upper-case headers, no borders, columns two spaces apart."""
    grid = rich.table.Table(box=None, show_header=header, header_style="bold", pad_edge=False, padding=(0, 3, 0, 0))
    for column in columns:
        grid.add_column(column, no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    return grid


def run_cells(status: Body, *, now: datetime.datetime) -> tuple[str, ...]:
    """A run of the local service (its status, camelCase) in :data:`RUN_COLUMNS`."""
    return (
        str(status.get("runID", "")),
        str(status.get("routineID", "")),
        str(status.get("phase", "")),
        str(status.get("worker") or "-"),
        duration(status.get("runTimeSeconds")),
        duration(status.get("roundTripSeconds")),
        age(status.get("createdAt"), now=now),
    )


def routine_cells(body: Body, *, now: datetime.datetime, with_namespace: bool) -> tuple[str, ...]:
    """A Routine in :data:`ROUTINE_COLUMNS` (NAMESPACE first when ``with_namespace``)."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    cells = (
        str(metadata.get("name", "")),
        str((body.get("spec") or {}).get("routineID", "")),
        str(status.get("phase") or "-"),
        str(status.get("worker") or "-"),
        duration(status.get("runTimeSeconds")),
        duration(status.get("roundTripSeconds")),
        age(metadata.get("creationTimestamp"), now=now),
    )
    return (str(metadata.get("namespace", "")), *cells) if with_namespace else cells


def routine_columns(*, with_namespace: bool) -> tuple[str, ...]:
    return ("NAMESPACE", *ROUTINE_COLUMNS) if with_namespace else ROUTINE_COLUMNS


def worker_cells(worker: Body, *, now: datetime.datetime) -> tuple[str, ...]:
    """A worker of ``/v1/workers/status`` in :data:`WORKER_COLUMNS`."""
    pulse = worker.get("lastPulse")
    return (
        str(worker.get("workerID", "")),
        str(worker.get("pool", "")),
        str(worker.get("slots", "")),
        str(worker.get("busy", "")),
        "yes" if worker.get("connected") else "no",
        "yes" if worker.get("draining") else "no",
        f"{age(pulse, now=now)} ago" if pulse else "-",
    )


# ---------------------------------------------------------------------- descriptions


def describe_run(status: Body, *, logs: Sequence[directives.Log], now: datetime.datetime) -> list[Any]:
    """``workpath describe RUN_ID`` in local mode: the run's status, then the tail of its log."""
    fields = [("Run ID", status.get("runID")), ("Routine", status.get("routineID")), *_run_fields(status, now=now)]
    if status.get("parentRunID"):
        fields.append(("Parent run", status["parentRunID"]))
    parts: list[Any] = [_fields(fields)]
    parts.append(rich.text.Text(f"Log (last {len(logs)} lines):" if logs else "Log: (no lines)"))
    parts.extend(rich.text.Text(f"  {stores.log_line(entry)}") for entry in logs)
    return parts


def describe_routine(body: Body, *, events: Sequence[Body], now: datetime.datetime) -> list[Any]:
    """``workpath describe NAME -n NS``: the Routine's status, its conditions and its recent Events."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    owners = [ref.get("name") for ref in metadata.get("ownerReferences") or () if ref.get("kind") == "Routine"]
    fields = [
        ("Name", metadata.get("name")),
        ("Namespace", metadata.get("namespace")),
        ("Routine", (body.get("spec") or {}).get("routineID")),
        ("Run ID", status.get("runID")),
        *_run_fields(status, now=now),
    ]
    if owners:
        fields.append(("Parent", owners[0]))
    conditions = [
        (
            str(c.get("type", "")),
            str(c.get("status", "")),
            str(c.get("reason", "")),
            str(c.get("message", "")),
            age(c.get("lastTransitionTime"), now=now),
        )
        for c in status.get("conditions") or ()
    ]
    recent = [
        (
            str(e.get("type", "")),
            str(e.get("reason", "")),
            age(_event_moment(e), now=now),
            str((e.get("source") or {}).get("component") or e.get("reportingComponent") or ""),
            str(e.get("message", "")),
        )
        for e in events
    ]
    return [
        _fields(fields),
        rich.text.Text("Conditions:" if conditions else "Conditions: <none>"),
        *([_indented(table(("TYPE", "STATUS", "REASON", "MESSAGE", "AGE"), conditions))] if conditions else []),
        rich.text.Text("Events:" if recent else "Events: <none>"),
        *([_indented(table(("TYPE", "REASON", "AGE", "FROM", "MESSAGE"), recent))] if recent else []),
    ]


def _run_fields(status: Body, *, now: datetime.datetime) -> list[tuple[str, object]]:
    fields: list[tuple[str, object]] = [
        ("Phase", status.get("phase") or "-"),
        ("Attempt", status.get("attempt", 0)),
        ("Worker", status.get("worker") or "-"),
        ("Created", _moment(status.get("createdAt"), now=now)),
        ("Started", _moment(status.get("startedAt"), now=now)),
        ("Completed", _moment(status.get("completedAt"), now=now)),
        ("Run time", duration(status.get("runTimeSeconds"))),
        ("Round trip", duration(status.get("roundTripSeconds"))),
    ]
    counts = status.get("subroutines")
    if counts:
        fields.append(("Subroutines", children(counts)))
    if status.get("error"):
        error = status["error"]
        fields.append(("Error", f"{error.get('type')}: {error.get('message')}"))
    elif status.get("phase") == "Succeeded":
        fields.append(("Result", json.dumps(status.get("result"))))
    if status.get("message"):
        fields.append(("Message", status["message"]))
    return fields


def children(counts: Body) -> str:
    return (
        f"{counts.get('total', 0)} total, {counts.get('succeeded', 0)} succeeded, {counts.get('failed', 0)} failed, "
        f"{counts.get('running', 0)} running"
    )


def _fields(rows: Sequence[tuple[str, object]]) -> rich.table.Table:
    grid = rich.table.Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for name, value in rows:
        grid.add_row(f"{name}:", rich.text.Text("-" if value is None else str(value)))
    return grid


def _indented(inner: rich.table.Table) -> rich.padding.Padding:
    return rich.padding.Padding(inner, (0, 0, 0, 2))


# ---------------------------------------------------------------------- times


def age(moment: object, *, now: datetime.datetime) -> str:
    """kubectl's AGE: ``42s``, ``5m``, ``3h``, ``2d`` since ``moment`` (a datetime or RFC 3339 text)."""
    when = _parse(moment)
    if when is None:
        return "-"
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 3600 * 2:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def duration(seconds: object) -> str:
    """A run time: ``0.4ms``, ``12.3ms``, ``1.234s``; ``-`` when unknown."""
    if not isinstance(seconds, int | float):
        return "-"
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.3f}s"


def _moment(moment: object, *, now: datetime.datetime) -> str:
    when = _parse(moment)
    return "-" if when is None else f"{when.isoformat()} ({age(when, now=now)} ago)"


def _event_moment(event: Body) -> object:
    return event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")


def _parse(moment: object) -> datetime.datetime | None:
    if isinstance(moment, datetime.datetime):
        return moment
    if not isinstance(moment, str) or not moment:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(moment)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


# ---------------------------------------------------------------------- progress


class FanOutProgress:
    """Children done of total while ``workpath run`` waits for a run that fans out.

    On a terminal, a rich progress bar (gone when the run ends); otherwise one line each time the count changes,
    so that a log shows how far it got. Notes (phase changes) print above the bar.
    """

    def __init__(self, output: rich.console.Console) -> None:
        self._console = output
        self._progress: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None
        self._shown: tuple[int, int, int] | None = None

    def __enter__(self) -> Self:
        if self._console.is_terminal:
            self._progress = rich.progress.Progress(
                rich.progress.SpinnerColumn(),
                rich.progress.TextColumn("{task.description}"),
                rich.progress.BarColumn(),
                rich.progress.MofNCompleteColumn(),
                rich.progress.TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def note(self, text: str) -> None:
        self._console.print(rich.text.Text(text))

    def update(self, status: Body) -> None:
        """Show the children counts of ``status`` (a run's status, camelCase), if it has children."""
        counts = status.get("subroutines") or {}
        total = int(counts.get("total") or 0)
        if not total:
            return
        failed = int(counts.get("failed") or 0)
        done = int(counts.get("succeeded") or 0) + failed
        if (done, total, failed) == self._shown:
            return
        self._shown = (done, total, failed)
        description = "children done" + (f" ({failed} failed)" if failed else "")
        if self._progress is None:
            self.note(f"  children {done} of {total} done" + (f" ({failed} failed)" if failed else ""))
        elif self._task is None:
            self._task = self._progress.add_task(description, total=total, completed=done)
        else:
            self._progress.update(self._task, total=total, completed=done, description=description)
