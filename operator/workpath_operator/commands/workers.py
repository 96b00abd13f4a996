"""``workpath workers``: the workers the service knows, as its ``/v1/workers/status`` has them.

Local mode asks the service ``workpath dev`` started; with ``-n`` (or ``-A``), the operator's at ``--url``, with
the kubeconfig user's token (its workers span every namespace it serves: RBAC must let you list Routines there).
"""

from __future__ import annotations

import argparse
import datetime

from workpath_operator.commands import arguments, locating


def add_workers_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "workers",
        help="list the workers connected to the service: ID, pool, slots, busy, last pulse",
        description=(
            "The workers the directive service knows (connected, or within their reconnect grace period): their "
            "ID, pool, slots and how many are busy, whether they are connected or draining, and when each last "
            "answered a pulse check. Local mode: the service 'workpath dev' started; with -n or -A: the "
            "operator's at --url."
        ),
    )
    arguments.add_output_argument(parser)
    arguments.add_namespace_arguments(parser, all_namespaces=True)
    arguments.add_service_arguments(parser)
    parser.set_defaults(func=arguments.handler("workers", _workers))


async def _workers(args: argparse.Namespace) -> int:
    from workpath_operator.commands import rendering

    if arguments.in_cluster(args):
        api = await locating.operator_api(args, namespace=None)
    else:
        api = locating.local_api(args)
    async with api:
        listed = await api.workers()
    listed.sort(key=lambda worker: (str(worker.get("pool")), str(worker.get("workerID"))))
    if args.output is not None:
        print(rendering.dump(rendering.listing(listed), args.output))
        return 0
    if not listed:
        print(f"No workers connected to {api.url}.")
        return 0
    now = datetime.datetime.now(datetime.UTC)
    rendering.show(
        rendering.console(),
        rendering.table(rendering.WORKER_COLUMNS, [rendering.worker_cells(worker, now=now) for worker in listed]),
    )
    return 0
