"""The flags the commands share, their params, and how a command's coroutine is run and its errors printed.

Where a command talks to follows from its flags, as with kubectl: ``-n NAMESPACE`` or ``-A`` mean a cluster (the
kubeconfig, or the pod's account in a pod); without them, the local service (``--url``/``--token``, else
``$WORKPATH_API_URL``/``$WORKPATH_TOKEN``, else what ``workpath dev`` wrote to ``.workpath/dev.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from workpath_operator.commands import errors

SETTINGS_TITLE = "settings (each also from its WORKPATH_* environment variable; flags win)"
OUTPUTS = ("json", "yaml")
#: Modules the commands import only when they run, from the ``operator`` extra (a worker image has none).
OPERATOR_EXTRA = frozenset({"rich", "yaml", "kubernetes_asyncio", "kopf"})

Main = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param; VALUE is read as JSON when it parses (3, true, [1,2]) and as a string otherwise",
    )
    parser.add_argument("--params", default=None, metavar="JSON", help="all params as one JSON object")


def parse_params(pairs: list[str], document: str | None) -> dict[str, Any]:
    """``--params JSON`` merged with ``--param k=v`` pairs (pairs win)."""
    params: dict[str, Any] = {}
    if document:
        loaded = json.loads(document)
        if not isinstance(loaded, dict):
            raise ValueError(f"--params must be a JSON object, not {type(loaded).__name__}")
        params.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token`` of the directive service (local mode's, or the operator's)."""
    group = parser.add_argument_group("the service (local mode, or the operator's with -n)")
    group.add_argument(
        "--url",
        default=None,
        help="the directive service's URL, e.g. http://127.0.0.1:7740 [env WORKPATH_API_URL; local mode's default: "
        "from .workpath/dev.json, written by 'workpath dev'; with -n: the operator's Service, e.g. through "
        "'kubectl -n workpath port-forward svc/workpath 7740']",
    )
    group.add_argument(
        "--token",
        default=None,
        help="its bearer token [env WORKPATH_TOKEN; local mode's default: from .workpath/dev.json; with -n: your "
        "kubeconfig user's token, which Kubernetes RBAC on Routines lets in]",
    )


def add_namespace_arguments(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """``-n NAMESPACE`` (and ``-A``): talk to a cluster, as kubectl does, rather than to the local service."""
    group = parser.add_argument_group("a cluster (credentials: in-cluster, else $KUBECONFIG or ~/.kube/config)")
    group.add_argument(
        "-n",
        "--namespace",
        default=None,
        help="the namespace of the Routines: talk to the cluster, not to the local service",
    )
    if all_namespaces:
        group.add_argument(
            "-A", "--all-namespaces", action="store_true", help="the Routines of every namespace (of the cluster)"
        )


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default=None,
        help="print JSON or YAML instead of a table (the Routines as the API server has them, with -n/-A)",
    )


def in_cluster(args: argparse.Namespace) -> bool:
    """Whether the command talks to a cluster (``-n`` or ``-A`` given) rather than to the local service."""
    return bool(getattr(args, "namespace", None) or getattr(args, "all_namespaces", False))


def handler(name: str, main: Main) -> Callable[[argparse.Namespace], int]:
    """The ``func`` of command ``name``: runs ``main(args)``, prints a :class:`~.errors.CommandError` as one line
    (``workpath NAME: message``) and exits with its code; Ctrl-C exits 130, without a traceback."""

    def handle(args: argparse.Namespace) -> int:
        try:
            return run_async(main(args))
        except errors.CommandError as exc:
            print(f"workpath {name}: {exc.message}", file=sys.stderr)
            return exc.code
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if missing not in OPERATOR_EXTRA:
                raise
            print(
                f"workpath {name}: needs {missing}, of the operator extra: pip install 'workpath[operator]'",
                file=sys.stderr,
            )
            return errors.EXIT_USAGE
        except KeyboardInterrupt:
            return 130

    return handle


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
