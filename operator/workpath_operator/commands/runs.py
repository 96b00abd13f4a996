"""``workpath get`` (``list``), ``describe``, ``cancel`` and ``logs``: runs as kubectl shows resources.

Local mode knows runs by run ID, from the service's API. With ``-n``/``-A`` they are Routines, read straight from
the API server (a name, or a run ID), with the kubeconfig's credentials; their log lines are the operator's
(``--url``). Handlers load rich and the Kubernetes client only when they run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from workpath_operator.commands import arguments, calling, errors, locating

#: Seconds between two looks of ``get --watch`` (a poll: the same for local mode and a cluster).
WATCH_INTERVAL = 1.0
#: Log lines ``describe`` shows in local mode.
LOG_TAIL = 20
#: Events ``describe`` shows of a Routine (the most recent).
EVENT_TAIL = 20

Body = dict[str, Any]
Lister = Callable[[], Awaitable[list[Body]]]

_NAME_HELP = "a run ID (a UUID), or with -n the name of a Routine"


def add_get_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "get",
        aliases=["list"],
        help="list runs (local mode) or Routines (-n NAMESPACE, -A), or show one",
        description=(
            "A table of runs: name or run ID, routine, phase, worker, run time, round trip, age. Local mode lists "
            "the runs of the service 'workpath dev' started (those not finished and the last --limit finished); "
            "with -n NAMESPACE or -A, the Routines of the cluster, read with your kubeconfig (-l picks them by "
            "label). --watch prints again whatever changes, until Ctrl-C."
        ),
        epilog="examples: workpath get;  workpath get -n reports -w;  workpath get -A -o json;  "
        "workpath get RUN_ID -o yaml",
    )
    parser.add_argument("name", nargs="?", metavar="NAME|RUN_ID", help=f"only this one: {_NAME_HELP}")
    arguments.add_output_argument(parser)
    parser.add_argument("-w", "--watch", action="store_true", help="after the list, print what changes (Ctrl-C ends)")
    parser.add_argument("-l", "--selector", default=None, help="a label selector of Routines (with -n or -A)")
    parser.add_argument(
        "--limit", type=int, default=100, help="finished runs listed in local mode: the last LIMIT (default: 100)"
    )
    arguments.add_namespace_arguments(parser, all_namespaces=True)
    arguments.add_service_arguments(parser)
    parser.set_defaults(func=arguments.handler("get", _get))


def add_describe_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "describe",
        help="show a run or Routine in detail: status, conditions, children, Events or log",
        description=(
            "Everything known of one run: phase, attempt, worker, timestamps, run and round-trip times, its "
            "sub-routines' counts, its result or error. With -n (a Routine): its conditions and recent Events, "
            "from the API server. In local mode: the last lines of its log."
        ),
    )
    parser.add_argument("name", metavar="NAME|RUN_ID", help=_NAME_HELP)
    arguments.add_namespace_arguments(parser)
    arguments.add_service_arguments(parser)
    parser.set_defaults(func=arguments.handler("describe", _describe))


def add_cancel_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cancel",
        help="cancel a run and its sub-routines (with -n: delete its Routine)",
        description=(
            "Cancel a run that has not finished, and its sub-routines: in local mode through the service's API; "
            "with -n, by deleting its Routine (as 'kubectl delete routine' does: the operator cancels the run, "
            "and its children go with it). A run already finished is left as it ended."
        ),
    )
    parser.add_argument("name", metavar="NAME|RUN_ID", help=_NAME_HELP)
    parser.add_argument("--reason", default="cancelled with workpath cancel", help="why (local mode)")
    arguments.add_namespace_arguments(parser)
    arguments.add_service_arguments(parser)
    parser.set_defaults(func=arguments.handler("cancel", _cancel))


def add_logs_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="print a run's log lines (ctx.log), by run ID or Routine name",
        description=(
            "Print the ctx.log lines the service keeps of a run: give its run ID, or the name of its Routine "
            "(read with your kubeconfig; -n for its namespace). The service keeps the lines of recent runs in "
            "memory only; worker pods print every line to their stdout as JSON, for the cluster's log collection."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "run", metavar="RUN_ID|ROUTINE", help="a run ID (a UUID), or the name of a Routine (anything else)"
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="the namespace of the Routine, or of the run (the operator's runs API asks for it); "
        "for a Routine, default: the kubeconfig context's, else 'default'",
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the run finishes")
    arguments.add_service_arguments(parser)
    parser.set_defaults(func=arguments.handler("logs", _logs))


# ---------------------------------------------------------------------- get


async def _get(args: argparse.Namespace) -> int:
    from workpath_operator.commands import rendering

    if arguments.in_cluster(args):
        return await _get_routines(args)
    if args.selector:
        raise errors.CommandError("-l selects Routines by label: pass -n NAMESPACE or -A", code=errors.EXIT_USAGE)
    _check_run_id(args.name)
    async with locating.local_api(args) as api:
        if args.name:
            run_id = args.name

            async def lister() -> list[Body]:
                return [await api.read(run_id)]

        else:

            async def lister() -> list[Body]:
                return await api.list_runs(limit=args.limit)

        view = _View(
            columns=rendering.RUN_COLUMNS,
            key=lambda status: str(status["runID"]),
            cells=lambda status, now: rendering.run_cells(status, now=now),
            single=bool(args.name),
        )
        return await view.show(lister, output=args.output, watch=args.watch)


async def _get_routines(args: argparse.Namespace) -> int:
    from workpath_operator.commands import clusters, rendering

    namespace = locating.namespace_of(args)
    name = args.name
    with_namespace = namespace is None
    async with clusters.Routines.open() as routines:
        if name:
            found = await routines.find(namespace, name)  # once: an unknown name is an error, not an empty watch
            where = found["metadata"]["namespace"]
            real_name = found["metadata"]["name"]

            async def lister() -> list[Body]:
                return [await routines.find(where, real_name)]

        else:

            async def lister() -> list[Body]:
                return await routines.listed(namespace, selector=args.selector)

        view = _View(
            columns=rendering.routine_columns(with_namespace=with_namespace),
            key=lambda body: str(body["metadata"]["uid"]),
            cells=lambda body, now: rendering.routine_cells(body, now=now, with_namespace=with_namespace),
            single=bool(name),
            api_version="v1",
        )
        return await view.show(lister, output=args.output, watch=args.watch)


class _View:
    """How ``get`` prints what it lists: a table, or JSON/YAML; once, or again as things change (``--watch``)."""

    def __init__(
        self,
        *,
        columns: Sequence[str],
        key: Callable[[Body], str],
        cells: Callable[[Body, datetime.datetime], tuple[str, ...]],
        single: bool,
        api_version: str | None = None,
    ) -> None:
        self.columns = columns
        self.key = key
        self.cells = cells
        self.single = single
        self.api_version = api_version

    async def show(self, lister: Lister, *, output: str | None, watch: bool) -> int:
        from workpath_operator.commands import rendering

        out = rendering.console()
        items = await lister()
        if output is not None:
            document = items[0] if self.single else rendering.listing(items, api_version=self.api_version)
            print(rendering.dump(document, output), flush=True)
        elif items or watch:
            rendering.show(out, rendering.table(self.columns, self._rows(items)))
        else:
            print("No runs found." if self.api_version is None else "No Routines found.", file=sys.stderr)
        if not watch:
            return 0
        try:
            await self._watch(lister, items, output=output)
        except asyncio.CancelledError:  # Ctrl-C: the end of a watch, not a failure
            return 0
        return 0

    async def _watch(self, lister: Lister, items: list[Body], *, output: str | None) -> None:
        """Print each item again when its row (or, with ``-o``, the item itself) changes."""
        from workpath_operator.commands import rendering

        out = rendering.console()
        now = _now()
        seen = {self.key(item): self._signature(item, output, now) for item in items}
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = _now()
            changed = []
            for item in await lister():
                signature = self._signature(item, output, now)
                if seen.get(self.key(item)) != signature:
                    seen[self.key(item)] = signature
                    changed.append(item)
            if not changed:
                continue
            if output == "json":
                for item in changed:
                    print(rendering.dump(item, "json").replace("\n", "").replace("  ", ""), flush=True)
            elif output == "yaml":
                for item in changed:
                    print("---\n" + rendering.dump(item, "yaml"), flush=True)
            else:
                rendering.show(out, rendering.table(self.columns, self._rows(changed), header=False))

    def _signature(self, item: Body, output: str | None, now: datetime.datetime) -> object:
        """What must change for ``--watch`` to print the item again (not its age alone)."""
        if output is not None:
            return repr(item.get("status", item))  # a Routine's status, a local run's whole status
        return self.cells(item, now)[:-1]

    def _rows(self, items: Sequence[Body]) -> list[tuple[str, ...]]:
        now = _now()
        return [self.cells(item, now) for item in items]


# ---------------------------------------------------------------------- describe, cancel, logs


async def _describe(args: argparse.Namespace) -> int:
    from workpath_operator.commands import rendering

    out = rendering.console()
    if arguments.in_cluster(args):
        from workpath_operator.commands import clusters

        async with clusters.Routines.open() as routines:
            body = await routines.find(args.namespace, args.name)
            events = (await routines.events(body))[-EVENT_TAIL:]
        rendering.show(out, *rendering.describe_routine(body, events=events, now=_now()))
        return 0
    _check_run_id(args.name)
    async with locating.local_api(args) as api:
        status = await api.read(args.name)
        logs = [entry async for entry in api.logs(args.name, follow=False)][-LOG_TAIL:]
    rendering.show(out, *rendering.describe_run(status, logs=logs, now=_now()))
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    if arguments.in_cluster(args):
        return await _cancel_routine(args)
    _check_run_id(args.name)
    async with locating.local_api(args) as api:
        before = await api.read(args.name)
        if before["phase"] in _FINISHED:
            print(f"run {args.name} already {before['phase']}: nothing to cancel")
            return 0
        after = await api.cancel(args.name, reason=args.reason)
    print(f"run {args.name} cancelled ({after['phase']})")
    return 0


async def _cancel_routine(args: argparse.Namespace) -> int:
    from workpath_operator.commands import clusters

    async with clusters.Routines.open() as routines:
        body = await routines.find(args.namespace, args.name)
        metadata = body["metadata"]
        phase = (body.get("status") or {}).get("phase")
        if phase in _FINISHED:
            print(
                f"routine.workpath.dev/{metadata['name']} already {phase}: nothing to cancel "
                f"(kubectl -n {metadata['namespace']} delete routine {metadata['name']} removes it)"
            )
            return 0
        await routines.delete(body)
    print(f"routine.workpath.dev/{metadata['name']} deleted: its run is cancelled")
    return 0


_FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})


async def _logs(args: argparse.Namespace) -> int:
    """A run ID without -n: the local service's run; a Routine's name: its run, in -n (or the context's)."""
    if locating.is_run_id(args.run) and args.namespace is None:
        return await _print_logs(locating.local_api(args), args.run, follow=args.follow, hint="")
    namespace = args.namespace or locating.context_namespace()
    api = await locating.operator_api(args, namespace=namespace)
    if locating.is_run_id(args.run):
        return await _print_logs(api, args.run, follow=args.follow, hint="")
    from workpath_operator.commands import clusters
    from workpath_operator.kube import resources

    async with clusters.Routines.open() as routines:
        body = await routines.find(namespace, args.run)
    worker = (body.get("status") or {}).get("worker")
    hint = f"; its worker pod printed them to its stdout: kubectl -n {namespace} logs {worker}" if worker else ""
    return await _print_logs(api, resources.run_id_of(body), follow=args.follow, hint=hint)


async def _print_logs(api: calling.ServiceApi, run_id: str, *, follow: bool, hint: str) -> int:
    from workpath_operator.service import stores

    async with api:
        try:
            async for entry in api.logs(run_id, follow=follow):
                print(stores.log_line(entry), flush=True)
        except errors.CommandError as exc:
            raise errors.CommandError(exc.message + hint, code=exc.code) from None
    return 0


def _check_run_id(name: str | None) -> None:
    if name is not None and not locating.is_run_id(name):
        raise errors.CommandError(
            f"no run {name}: local mode knows runs by run ID (a UUID; 'workpath get' lists them); "
            "for a Routine's name, pass -n NAMESPACE"
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
