"""``workpath run``: submit a run, wait for it with a progress display of its children, print how it ended.

Local mode submits to the service ``workpath dev`` started; with ``-n`` to the operator's (``--url``), where the
run becomes a Routine in that namespace (Kubernetes RBAC on Routines decides, with the kubeconfig user's token).
"""

from __future__ import annotations

import argparse
import sys

import pydantic

from workpath_operator.commands import arguments, calling, errors, locating
from workpath_operator.service import runs

#: Seconds each read waits for the run to finish: how often the progress display learns its children's counts.
POLL_WAIT = 0.5


def add_run_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="submit a run to a running service and wait for its result",
        description=(
            "Submit ROUTINE_ID with params to the service (by default the one 'workpath dev' started "
            "in this directory; with -n, the operator's at --url, where the run becomes a Routine), wait for it "
            "to finish, showing how many of its sub-routines are done, and print its status, timestamps, run "
            "time, round-trip time and result. Exit code 0 when it succeeded, 1 when not, 2 when refused."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("routine_id", metavar="ROUTINE_ID")
    arguments.add_params(parser)
    parser.add_argument("--timeout", type=float, default=None, help="deadline per attempt, seconds")
    parser.add_argument("--retries", type=int, default=0, help="retries of a retryable failure")
    parser.add_argument("--priority", type=int, default=0, help="higher runs first")
    parser.add_argument("--pool", default=None, help="only workers of this pool")
    parser.add_argument("--no-wait", action="store_true", help="print the run ID and return at once")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    arguments.add_namespace_arguments(parser)
    arguments.add_service_arguments(parser)
    parser.set_defaults(func=arguments.handler("run", _run))


async def _run(args: argparse.Namespace) -> int:
    try:
        spec = runs.RunSpec.model_validate(
            {
                "routineID": args.routine_id,
                "params": arguments.parse_params(args.param, args.params),
                "timeoutSeconds": args.timeout,
                "retries": {"limit": args.retries},
                "priority": args.priority,
                "pool": args.pool,
            }
        )
    except (ValueError, pydantic.ValidationError) as exc:
        raise errors.CommandError(str(exc), code=errors.EXIT_USAGE) from None
    if args.namespace:
        api = await locating.operator_api(args, namespace=args.namespace)
    else:
        api = locating.local_api(args)
    async with api:
        try:
            submitted = await api.submit(spec.model_dump(mode="json", by_alias=True))
        except errors.CommandError as exc:
            raise errors.CommandError(f"the run was not submitted: {exc.message}", code=errors.EXIT_USAGE) from None
        status = runs.RunStatus.model_validate(submitted)
        routine = submitted.get("routine")
        where = f" (Routine {routine['namespace']}/{routine['name']})" if routine else ""
        if args.no_wait:
            print(f"submitted {spec.routine_id} as run {status.run_id}{where}", file=sys.stderr)
            print(status.run_id)
            return 0
        final = await _wait(api, status, announce=f"submitted {spec.routine_id} as run {status.run_id}{where}")
    from workpath_operator.local import developing

    print(final.model_dump_json(indent=2, exclude_none=True) if args.json else developing.render(final), flush=True)
    return 0 if final.phase is runs.Phase.SUCCEEDED else errors.EXIT_FAILED


async def _wait(api: calling.ServiceApi, status: runs.RunStatus, *, announce: str) -> runs.RunStatus:
    """Read the run until it finishes; say each phase it goes through and how many of its children are done."""
    from workpath_operator.commands import rendering

    with rendering.FanOutProgress(rendering.console(stderr=True)) as progress:
        progress.note(announce)
        last_phase = status.phase
        while True:
            body = await api.read(status.run_id, wait=POLL_WAIT)
            status = runs.RunStatus.model_validate(body)
            progress.update(body)
            if status.phase is not last_phase:
                progress.note(f"  {status.phase.value.lower()}" + (f" on {status.worker}" if status.worker else ""))
                last_phase = status.phase
            if status.phase.finished:
                return status
