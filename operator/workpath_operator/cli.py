"""The control plane's commands of the ``workpath`` CLI: ``dev``, ``run``, ``logs``.

They are plugged into ``workpath`` (defined in the worker package) through the
``workpath.commands`` entry points, so the worker package never imports this one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys
import uuid
from collections.abc import Coroutine
from typing import Any

import aiohttp
import pydantic

from workpath_operator.kube import settings
from workpath_operator.local import developing
from workpath_operator.service import runs


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
    _add_params(parser)
    developing.LocalSettings.add_flags(parser, title=_SETTINGS_TITLE)
    parser.set_defaults(func=_dev)


def add_run_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="submit a run to a running service and wait for its result",
        description=(
            "Submit ROUTINE_ID with params to the service (by default the one 'workpath dev' started "
            "in this directory), wait for it to finish and print its status, timestamps, run time, "
            "round-trip time and result. Exit code 0 when it succeeded, 1 when not."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("routine_id", metavar="ROUTINE_ID")
    _add_params(parser)
    parser.add_argument("--timeout", type=float, default=None, help="deadline per attempt, seconds")
    parser.add_argument("--retries", type=int, default=0, help="retries of a retryable failure")
    parser.add_argument("--priority", type=int, default=0, help="higher runs first")
    parser.add_argument("--pool", default=None, help="only workers of this pool")
    parser.add_argument("--no-wait", action="store_true", help="print the run ID and return at once")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_client_arguments(parser)
    parser.set_defaults(func=_run)


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
    _add_client_arguments(parser)
    parser.set_defaults(func=_logs)


# ---------------------------------------------------------------------- arguments

_SETTINGS_TITLE = "settings (each also from its WORKPATH_* environment variable; flags win)"


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param; VALUE is read as JSON when it parses (3, true, [1,2]) and as a string otherwise",
    )
    parser.add_argument("--params", default=None, metavar="JSON", help="all params as one JSON object")


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("WORKPATH_API_URL"),
        help="service URL (env WORKPATH_API_URL; default: from .workpath/dev.json)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("WORKPATH_TOKEN"),
        help="token (env WORKPATH_TOKEN; default: from .workpath/dev.json)",
    )


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


# ---------------------------------------------------------------------- commands


def _dev(args: argparse.Namespace) -> int:
    try:
        local_settings = developing.LocalSettings.load(**developing.LocalSettings.flag_values(args))
    except pydantic.ValidationError as exc:
        print(f"workpath dev: {developing.LocalSettings.explain(exc)}", file=sys.stderr)
        return 2
    try:
        params = parse_params(args.param, args.params)
        spec = runs.RunSpec(routine_id=args.run, params=params) if args.run else None
    except (ValueError, pydantic.ValidationError) as exc:
        print(f"workpath dev: {exc}", file=sys.stderr)
        return 2
    return run_async(developing.serve(args.modules, settings=local_settings, run=spec))


def _run(args: argparse.Namespace) -> int:
    try:
        spec = runs.RunSpec.model_validate(
            {
                "routineID": args.routine_id,
                "params": parse_params(args.param, args.params),
                "timeoutSeconds": args.timeout,
                "retries": {"limit": args.retries},
                "priority": args.priority,
                "pool": args.pool,
            }
        )
        url, token = _locate(args)
    except (ValueError, pydantic.ValidationError) as exc:
        print(f"workpath run: {exc}", file=sys.stderr)
        return 2
    return run_async(_submit_and_wait(url, token, spec, wait=not args.no_wait, as_json=args.json))


def _logs(args: argparse.Namespace) -> int:
    try:
        url, token = _locate(args)
    except ValueError as exc:
        print(f"workpath logs: {exc}", file=sys.stderr)
        return 2
    if _is_run_id(args.run):
        return run_async(_print_logs(url, token, args.run, follow=args.follow, namespace=args.namespace))
    return run_async(_print_routine_logs(url, token, args.run, namespace=args.namespace, follow=args.follow))


def _is_run_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _print_routine_logs(url: str, token: str, name: str, *, namespace: str | None, follow: bool) -> int:
    """The log lines of the run of Routine ``name``, whose run ID is read from the Routine."""
    from workpath_operator.kube import clients, resources  # the Kubernetes client takes seconds to import

    namespace = namespace or _context_namespace()
    try:
        configuration = await clients.load_configuration()
        async with clients.KubernetesClient(configuration) as client:
            body = await client.get_routine(namespace, name)
    except clients.ApiError as exc:
        found = f"no Routine {name} in namespace {namespace}" if exc.status == 404 else str(exc)
        print(f"workpath logs: {found}", file=sys.stderr)
        return 1
    worker = (body.get("status") or {}).get("worker")
    elsewhere = f"; its worker pod printed them to its stdout: kubectl -n {namespace} logs {worker}" if worker else ""
    return await _print_logs(url, token, resources.run_id_of(body), follow=follow, namespace=namespace, hint=elsewhere)


def _context_namespace() -> str:
    """The namespace of the kubeconfig's current context, else ``default`` (as kubectl does)."""
    import kubernetes_asyncio.config

    try:
        _, current = kubernetes_asyncio.config.list_kube_config_contexts()
    except (kubernetes_asyncio.config.ConfigException, OSError):
        return "default"
    return str(((current or {}).get("context") or {}).get("namespace") or "default")


def _locate(args: argparse.Namespace) -> tuple[str, str]:
    url, token = args.url, args.token
    if url is None or token is None:
        state = developing.STATE_FILE
        if not state.exists():
            raise ValueError(
                f"no service to talk to: start 'workpath dev MODULE' in this directory "
                f"(it writes {state}), or give --url and --token"
            )
        saved = json.loads(pathlib.Path(state).read_text())
        url = url or saved["url"]
        token = token or saved["token"]
    return url.rstrip("/"), token


async def _submit_and_wait(url: str, token: str, spec: runs.RunSpec, *, wait: bool, as_json: bool) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        try:
            async with http.post(f"{url}/v1/runs", data=spec.model_dump_json(by_alias=True)) as response:
                body = await response.text()
                if response.status != 201:
                    print(
                        f"workpath run: the service refused the run ({response.status}): {body}",
                        file=sys.stderr,
                    )
                    return 2
        except aiohttp.ClientConnectionError as exc:
            print(f"workpath run: cannot reach the service at {url}: {exc}", file=sys.stderr)
            return 2
        status = runs.RunStatus.model_validate_json(body)
        print(f"submitted {spec.routine_id} as run {status.run_id}", file=sys.stderr)
        if not wait:
            print(status.run_id)
            return 0
        last_phase = status.phase
        while not status.phase.finished:
            async with http.get(f"{url}/v1/runs/{status.run_id}", params={"wait": "5"}) as response:
                status = runs.RunStatus.model_validate_json(await response.text())
            if status.phase is not last_phase:
                print(
                    f"  {status.phase.value.lower()}" + (f" on {status.worker}" if status.worker else ""),
                    file=sys.stderr,
                )
                last_phase = status.phase
    if as_json:
        print(status.model_dump_json(indent=2, exclude_none=True))
    else:
        print(developing.render(status))
    return 0 if status.phase is runs.Phase.SUCCEEDED else 1


async def _print_logs(
    url: str, token: str, run_id: str, *, follow: bool, namespace: str | None = None, hint: str = ""
) -> int:
    from workpath import directives
    from workpath_operator.service import stores

    headers = {"Authorization": f"Bearer {token}"}
    params = {"follow": "1" if follow else "0"} | ({"namespace": namespace} if namespace else {})
    async with (
        aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as http,
        http.get(f"{url}/v1/runs/{run_id}/logs", params=params) as response,
    ):
        if response.status == 404:
            print(f"workpath logs: the service has no run {run_id} (any more){hint}", file=sys.stderr)
            return 1
        if response.status != 200:
            print(f"workpath logs: the service refused ({response.status}): {await response.text()}", file=sys.stderr)
            return 1
        async for line in response.content:
            if line.strip():
                print(stores.log_line(directives.Log.model_validate_json(line)), flush=True)
    return 0


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


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
        return run_async(operating.operate(operator_settings))
    except clients.ApiError as exc:
        print(f"workpath operator: the Kubernetes API: {exc}", file=sys.stderr)
        return 1
