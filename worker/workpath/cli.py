"""The ``workpath`` command.

``workpath worker MODULE ...`` is defined here. The other subcommands (``dev``,
``run``, ``logs``, ``operator``) come from the ``workpath.commands`` entry points:
each is a function called with the subparsers object, which adds its subparser
and sets ``func`` (``handler(args) -> int``) as its default. Those that cannot be
loaded (the operator extras are not installed) are left out.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import pydantic

import workpath
from workpath import errors, routines, settings

ENTRY_POINT_GROUP = "workpath.commands"
EXIT_USAGE = 2

logger = logging.getLogger("workpath.cli")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> NoReturn:
    """Parse ``argv`` (``sys.argv[1:]``), run the subcommand, exit with its code."""
    parser = build_parser(prog=prog)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(func(args))


def build_parser(*, prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "workpath",
        description="Run Python routines on a fleet of workers.",
        epilog=(
            "Every setting of a command is a flag and an environment variable (--slots, WORKPATH_SLOTS); "
            "flags win. 'workpath COMMAND --help' lists them with their defaults."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {workpath.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_worker_command(subparsers)
    for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            add_command = entry_point.load()
        except Exception as exc:  # the operator extras are not installed, or it is broken
            logger.debug("skipping the %r command: cannot load %s: %s", entry_point.name, entry_point.value, exc)
            continue
        add_command(subparsers)
    return parser


def add_worker_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``workpath worker MODULE [MODULE ...]`` with one flag per worker setting."""
    parser = subparsers.add_parser(
        "worker",
        help="run a worker with the routines of some modules",
        description=(
            "Connect to the directive service and run the routines defined in MODULEs "
            "(functions decorated with @workpath.routine). SIGTERM or SIGINT drains the worker: "
            "it finishes its runs (or hands them back after --drain-timeout) and exits; "
            "a second signal exits at once. Every setting can also be given as an environment "
            "variable; flags win."
        ),
        epilog="exit codes: 0 drained, 2 bad usage or routines, 3 token refused by the service",
    )
    parser.add_argument("modules", nargs="+", metavar="MODULE", help="module to import routines from (a.b.c)")
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory put first on sys.path to import MODULEs from (default: the current one)",
    )
    settings.WorkerSettings.add_flags(parser)
    parser.set_defaults(func=run_worker_command)


def run_worker_command(args: argparse.Namespace) -> int:
    """The handler of ``workpath worker``."""
    from workpath import working  # here: aiohttp's client is only needed to run a worker

    try:
        worker_settings = settings.WorkerSettings.load(**settings.WorkerSettings.flag_values(args))
    except pydantic.ValidationError as exc:
        print(f"workpath worker: {settings.WorkerSettings.explain(exc)}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=worker_settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    app_dir = os.path.abspath(args.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        definitions = routines.load(args.modules)
    except errors.RoutineDefinitionError as exc:
        print(f"workpath worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logger.debug("loaded routines: %s", ", ".join(sorted(definitions)))
    return working.run_worker(worker_settings, definitions.values())
