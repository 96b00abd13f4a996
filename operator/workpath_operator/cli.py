"""The control plane's commands of the ``workpath`` CLI: ``dev``, ``operator``, and (from
:mod:`workpath_operator.commands`) ``run``, ``get``/``list``, ``describe``, ``cancel``, ``workers``, ``logs``.

They are plugged into ``workpath`` (defined in the worker package) through the ``workpath.commands`` entry points,
all of which name a function of this module, so the worker package never imports this one.
"""

from __future__ import annotations

import argparse
import sys

import pydantic

from workpath_operator.commands import arguments, running, runs, workers
from workpath_operator.kube import settings
from workpath_operator.local import developing
from workpath_operator.service import runs as service_runs

#: The commands of :mod:`workpath_operator.commands`, each added by its entry point.
add_run_command = running.add_run_command
add_get_command = runs.add_get_command
add_describe_command = runs.add_describe_command
add_cancel_command = runs.add_cancel_command
add_logs_command = runs.add_logs_command
add_workers_command = workers.add_workers_command

#: Kept here for those that run a coroutine or read params as the commands do (the benchmarks).
run_async = arguments.run_async
parse_params = arguments.parse_params
_SETTINGS_TITLE = arguments.SETTINGS_TITLE


def add_dev_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run the service and local worker processes on this machine (no cluster)",
        description=(
            "Local mode: start the directive service with a local run store and N worker processes "
            "running MODULE's routines. With --run, run one routine, print its status and exit; "
            "otherwise serve until Ctrl-C (submit with 'workpath run' from another terminal)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="module(s) with @workpath.routine functions")
    parser.add_argument("--run", metavar="ROUTINE_ID", default=None, help="run this routine once, then exit")
    arguments.add_params(parser)
    developing.LocalSettings.add_flags(parser, title=_SETTINGS_TITLE)
    parser.set_defaults(func=_dev)


def _dev(args: argparse.Namespace) -> int:
    try:
        local_settings = developing.LocalSettings.load(**developing.LocalSettings.flag_values(args))
    except pydantic.ValidationError as exc:
        print(f"workpath dev: {developing.LocalSettings.explain(exc)}", file=sys.stderr)
        return 2
    try:
        params = arguments.parse_params(args.param, args.params)
        spec = service_runs.RunSpec(routine_id=args.run, params=params) if args.run else None
    except (ValueError, pydantic.ValidationError) as exc:
        print(f"workpath dev: {exc}", file=sys.stderr)
        return 2
    return arguments.run_async(developing.serve(args.modules, settings=local_settings, run=spec))


# ---------------------------------------------------------------------- operator


def add_operator_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the Kubernetes operator: Routines in, runs on workers, status out",
        description=_OPERATOR_DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_operator_arguments(parser)


def operator_main(argv: list[str] | None = None) -> int:
    """``python -m workpath_operator``: the same as ``workpath operator``."""
    parser = argparse.ArgumentParser(
        prog="python -m workpath_operator",
        description=_OPERATOR_DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_operator_arguments(parser)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


_OPERATOR_DESCRIPTION = (
    "Serve the Routine resources of some namespaces (--namespace, repeatable) or of all (--all-namespaces): "
    "run them on the workers connected to the directive service and write their phase, worker, timestamps, "
    "result or error to their status. Credentials: in-cluster, else $KUBECONFIG. Workers authenticate with a "
    "ServiceAccount token (TokenReview) or the shared token (--token / WORKPATH_TOKEN)."
)


def _add_operator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="level of the logs"
    )
    settings.OperatorSettings.add_flags(parser, title=_SETTINGS_TITLE)
    parser.set_defaults(func=_operator)


def _operator(args: argparse.Namespace) -> int:
    import logging

    from workpath_operator.kube import clients, operating

    try:
        operator_settings = settings.OperatorSettings.load(**settings.OperatorSettings.flag_values(args))
    except pydantic.ValidationError as exc:
        print(f"workpath operator: {settings.OperatorSettings.explain(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.log_level != "debug":
        logging.getLogger("kopf").setLevel(logging.WARNING)
    try:
        return arguments.run_async(operating.operate(operator_settings))
    except clients.ApiError as exc:
        print(f"workpath operator: the Kubernetes API: {exc}", file=sys.stderr)
        return 1
