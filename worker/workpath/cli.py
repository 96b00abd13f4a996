"""The ``workpath`` command.

``workpath worker MODULE ...`` and ``workpath probe ready|live`` are defined here.
The other subcommands (``dev``, ``run``, ``logs``, ``operator``) come from the
``workpath.commands`` entry points: each is a function called with the subparsers
object, which adds its subparser and sets ``func`` (``handler(args) -> int``) as its
default. Those that cannot be loaded (the operator extras are not installed) are
left out. ``workpath probe`` runs every few seconds in every worker pod, so it is
parsed without loading the other commands (nor aiohttp, which they import).
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import workpath
from workpath import probing

ENTRY_POINT_GROUP = "workpath.commands"
EXIT_USAGE = 2
EXIT_PROBE_FAILED = 1
PROBE_COMMAND = "probe"

logger = logging.getLogger("workpath.cli")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> NoReturn:
    """Parse ``argv`` (``sys.argv[1:]``), run the subcommand, exit with its code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _probe_parser(prog=prog) if argv[:1] == [PROBE_COMMAND] else build_parser(prog=prog)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(func(args))


def build_parser(*, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command: the worker's, the probe's, and those of the entry points."""
    import importlib.metadata

    parser, subparsers = _root_parser(prog=prog)
    add_worker_command(subparsers)
    add_probe_command(subparsers)
    for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            add_command = entry_point.load()
        except Exception as exc:  # the operator extras are not installed, or it is broken
            logger.debug("skipping the %r command: cannot load %s: %s", entry_point.name, entry_point.value, exc)
            continue
        add_command(subparsers)
    return parser


def _probe_parser(*, prog: str | None) -> argparse.ArgumentParser:
    """The parser of ``workpath probe`` alone: fast to build, as a probe runs often (no pydantic, no version
    look-up in the package metadata)."""
    parser, subparsers = _root_parser(prog=prog, version=False)
    add_probe_command(subparsers)
    return parser


def _root_parser(
    *, prog: str | None, version: bool = True
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[Any]]:
    parser = argparse.ArgumentParser(
        prog=prog or "workpath",
        description="Run Python routines on a fleet of workers.",
        epilog=(
            "Every setting of a command is a flag and an environment variable (--slots, WORKPATH_SLOTS); "
            "flags win. 'workpath COMMAND --help' lists them with their defaults."
        ),
    )
    if version:
        parser.add_argument("--version", action="version", version=f"%(prog)s {workpath.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    return parser, subparsers


def add_worker_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``workpath worker MODULE [MODULE ...]`` with one flag per worker setting."""
    from workpath import settings  # here: pydantic is not needed to run a probe

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
    import pydantic

    from workpath import errors, routines, settings, working  # here: a probe needs none of them

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
    if worker_settings.status_file is not None:
        # A container restarted in the same pod finds its predecessor's file: say "starting" before the imports.
        status = probing.StatusFile(
            worker_settings.status_file, worker_id=worker_settings.worker_id, interval=worker_settings.status_interval
        )
        status.set("starting", f"importing {', '.join(args.modules)}")
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


def add_probe_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``workpath probe ready|live``: a worker pod's exec probes, read from the worker's status file."""
    parser = subparsers.add_parser(
        PROBE_COMMAND,
        help="check a worker through its status file (exec probes of worker pods)",
        description=(
            "Check the worker that keeps its state in the status file (the worker's --status-file, "
            "WORKPATH_STATUS_FILE). 'live': the worker refreshed the file lately, so its event loop runs "
            "(a worker reconnecting with backoff is live). 'ready': live and connected to the directive "
            "service (a connecting, reconnecting or draining worker is not ready)."
        ),
        epilog="exit codes: 0 passed, 1 failed (the reason is on stderr), 2 bad usage",
    )
    parser.add_argument("kind", choices=probing.PROBE_KINDS, help="which probe: ready or live")
    parser.add_argument(
        "--status-file",
        type=pathlib.Path,
        metavar="PATH",
        help=f"the worker's status file [env {probing.ENV_STATUS_FILE}]",
    )
    parser.add_argument(
        "--max-age",
        type=_positive_seconds,
        metavar="SECONDS",
        help=(
            "fail when the file is older than this; default: "
            f"{probing.STALE_INTERVALS} x the worker's --status-interval, as the file records it"
        ),
    )
    parser.set_defaults(func=run_probe_command)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:  # also nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def run_probe_command(args: argparse.Namespace) -> int:
    """The handler of ``workpath probe``: one line, on stdout if the probe passes, on stderr if not."""
    path = args.status_file or os.environ.get(probing.ENV_STATUS_FILE)
    if not path:
        print(
            f"workpath probe: no status file: give --status-file or {probing.ENV_STATUS_FILE}, "
            "the same as the worker's",
            file=sys.stderr,
        )
        return EXIT_USAGE
    passed, reason = probing.probe(args.kind, pathlib.Path(path), max_age=args.max_age)
    print(reason, file=sys.stdout if passed else sys.stderr)
    return 0 if passed else EXIT_PROBE_FAILED
