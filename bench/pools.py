"""Benchmark of WorkerPool autoscaling on the test control plane: scale-from-zero latency, cold starts, bursts.

    .venv/bin/python -m bench.pools [--trials 30] [--start-trials 8] [--bursts 6] [--burst-size 30] [--json PATH]

Starts the test control plane (tests/cluster), the operator as its own process (``python -m workpath_operator``
with ``--worker-url``, one namespace) and, from the second measure on, the process-kubelet, which runs the pools'
pods as local processes. Everything is created through the Kubernetes API from this process, as a user would.

1. ``zero``: a pool at 0 replicas (``minReplicas: 0``, ``scaleDownDelaySeconds: 0``), no kubelet (its pods stay
   Pending). Per trial: the time from just before a Routine's create call until a watch of the pool's Deployment
   sees ``spec.replicas >= 1``; then the Routine is deleted and the pool goes back to 0. Shown beside KEDA's
   reference: KEDA polls its scalers every ``pollingInterval`` (30 s by default), so its first replicas change
   after a run is queued comes up to 30 s later, 15 s on average.
2. ``start``: the same from 0 with the kubelet running pods: created -> replicas patched -> worker pod Running ->
   Routine ``status.phase`` Running on the new pod's worker; then the run finishes (0.1 s) and the pool goes
   back to 0 with no pod left before the next trial (if it stays up 3 s, it is nudged and counted: see settle).
3. ``bursts``: bursts of short Routines (0.2-1 s each) with pauses around the scale-down delay, so that pools
   scale down while some workers are busy and scale up again while others are let go. A run is *interrupted* if
   its attempt went past 1, its Running condition ever said Retrying, WorkerLost, Released or Requeued, or it
   left two start markers (see ``bench.nap``): the target is 0. Also counts the pool's ScaledUp and ScaledDown
   Events (and the replicas changes the Deployment watch saw) and the peak replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import pathlib
import platform
import random
import re
import secrets
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp
import rich.console
import rich.table

from bench import operator as operator_bench
from tests.cluster import controlplane, kubelet, manifests, processes
from tests.kube import operators

REPO = pathlib.Path(__file__).resolve().parents[1]
POOL_LABEL = "workpath.dev/pool"
ROUTINE = "bench.nap"
FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
INTERRUPTED_REASONS = frozenset({"Retrying", "WorkerLost", "Released", "Requeued"})
KEDA_POLLING = 30.0
"""KEDA's default pollingInterval, in seconds."""
NODES = ("bench-node-1", "bench-node-2")
MEASURES = ["zero", "start", "bursts"]

Body = Mapping[str, Any]


def pool_spec(*, slots: int, max_replicas: int, delay: int) -> dict[str, Any]:
    """A pool of ``bench.routines`` workers, run from this checkout by the process-kubelet."""
    return {
        "image": "workpath/worker:bench",
        "modules": ["bench.routines"],
        "routines": [ROUTINE],
        "slots": slots,
        "minReplicas": 0,
        "maxReplicas": max_replicas,
        "scaleDownDelaySeconds": delay,
        "drainTimeoutSeconds": 5,
        "env": [{"name": "PYTHONPATH", "value": str(REPO)}, {"name": "WORKPATH_BACKOFF_CAP", "value": "0.5"}],
    }


@dataclasses.dataclass
class RoutineSeen:
    """What the Routine watch saw of one Routine: when each phase first showed, its highest attempt, reasons."""

    uid: str = ""
    phases: dict[str, float] = dataclasses.field(default_factory=dict)
    attempt: int = 0
    reasons: set[str] = dataclasses.field(default_factory=set)


class Observed:
    """The namespace as the watches saw it, each change stamped with ``time.perf_counter()`` on arrival."""

    def __init__(self) -> None:
        self.replicas: dict[str, list[tuple[float, int]]] = collections.defaultdict(list)
        self.pods: dict[str, set[str]] = collections.defaultdict(set)
        self.pod_running: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
        self.routines: dict[str, RoutineSeen] = collections.defaultdict(RoutineSeen)
        self.changed = asyncio.Event()

    def on_deployment(self, kind: str, body: Body) -> None:
        pool = (body["metadata"].get("labels") or {}).get(POOL_LABEL)
        history = self.replicas[pool] if pool else None
        replicas = -1 if kind == "DELETED" else int(body["spec"].get("replicas") or 0)
        if history is not None and (not history or history[-1][1] != replicas):
            history.append((time.perf_counter(), replicas))
        self.changed.set()

    def on_pod(self, kind: str, body: Body) -> None:
        pool, name = (body["metadata"].get("labels") or {}).get(POOL_LABEL), body["metadata"]["name"]
        if not pool:
            return
        if kind == "DELETED":
            self.pods[pool].discard(name)
        else:
            self.pods[pool].add(name)
            running = (body.get("status") or {}).get("phase") == "Running"
            if running and name not in {seen for _, seen in self.pod_running[pool]}:
                self.pod_running[pool].append((time.perf_counter(), name))
        self.changed.set()

    def on_routine(self, kind: str, body: Body) -> None:
        seen, status = self.routines[body["metadata"]["name"]], body.get("status") or {}
        seen.uid = body["metadata"]["uid"]
        seen.phases.setdefault(status.get("phase") or "Pending", time.perf_counter())
        seen.attempt = max(seen.attempt, int(status.get("attempt") or 0))
        seen.reasons.update(c.get("reason", "") for c in status.get("conditions") or ())
        self.changed.set()

    def current(self, pool: str) -> int | None:
        """The pool's replicas as last seen (None: no Deployment)."""
        history = self.replicas.get(pool)
        return history[-1][1] if history and history[-1][1] >= 0 else None

    def finished(self, names: Iterable[str]) -> bool:
        """Whether every one of the Routines was seen finished."""
        return all(name in self.routines and FINISHED & self.routines[name].phases.keys() for name in names)

    async def until(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.changed.clear()
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{what}: not within {timeout:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))


def first_after(samples: list[tuple[float, Any]], since: float, accept: Callable[[Any], bool]) -> float:
    """The first time at or after ``since`` whose sample is accepted."""
    return next(t for t, value in samples if t >= since and accept(value))


class Api:
    """JSON requests and watches on one namespace, as the admin (aiohttp, as the operator benchmark does)."""

    def __init__(self, cluster: controlplane.Cluster, namespace: str) -> None:
        self.server = cluster.server
        self.namespace = namespace
        self.headers = {"Authorization": f"Bearer {cluster.token}"}
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=64))
        self.routines = f"/apis/{manifests.API_VERSION}/namespaces/{namespace}/{manifests.ROUTINES}"
        self.pools = f"/apis/{manifests.API_VERSION}/namespaces/{namespace}/{manifests.WORKER_POOLS}"

    async def send(
        self, method: str, path: str, body: Body | None = None, *, patch: bool = False, **params: str
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        headers = self.headers | {"Content-Type": "application/merge-patch+json" if patch else "application/json"}
        async with self.session.request(method, self.server + path, data=data, headers=headers, params=params) as r:
            if r.status >= 300:
                raise RuntimeError(f"{method} {path}: {r.status} {await r.text()}")
            found: dict[str, Any] = await r.json()
            return found

    async def create_routine(self, name: str, **params: Any) -> None:
        await self.send("POST", self.routines, manifests.routine(name, routineID=ROUTINE, params=params))

    async def watch(self, path: str, on_event: Callable[[str, Body], None], *, selector: str) -> None:
        """List, then watch from the list's resourceVersion; every object goes to ``on_event`` as it arrives."""
        listed = await self.send("GET", path, labelSelector=selector)
        for item in listed["items"]:
            on_event("ADDED", item)
        query = {"watch": "1", "labelSelector": selector, "resourceVersion": listed["metadata"]["resourceVersion"]}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.server + path, params=query, headers=self.headers, timeout=timeout) as r:
            async for line in r.content:
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(f"watch {path}: {event['object']}")
                on_event(event["type"], event["object"])

    def watch_all(self, observed: Observed) -> list[asyncio.Task[None]]:
        namespaced = f"/namespaces/{self.namespace}"
        watches = [
            (f"/apis/apps/v1{namespaced}/deployments", observed.on_deployment, POOL_LABEL),
            (f"/api/v1{namespaced}/pods", observed.on_pod, POOL_LABEL),
            (self.routines, observed.on_routine, ""),
        ]
        return [
            asyncio.create_task(self.watch(path, handler, selector=selector), name=f"bench-watch {path}")
            for path, handler, selector in watches
        ]

    async def pool_events(self, pool: str) -> list[tuple[str, str]]:
        """(reason, message) of every Event about the WorkerPool, each repeated by its count."""
        selector = f"involvedObject.kind=WorkerPool,involvedObject.name={pool}"
        listed = await self.send("GET", f"/api/v1/namespaces/{self.namespace}/events", fieldSelector=selector)
        return [(e["reason"], e.get("message", "")) for e in listed["items"] for _ in range(int(e.get("count") or 1))]


async def new_pool(api: Api, observed: Observed, name: str, spec: dict[str, Any]) -> None:
    await api.send("POST", api.pools, manifests.worker_pool(name, **spec))
    await observed.until(lambda: observed.current(name) == 0, timeout=30, what=f"pool {name}'s Deployment at 0")


async def back_to_zero(observed: Observed, pool: str, *, timeout: float) -> None:
    try:
        await observed.until(
            lambda: observed.current(pool) == 0 and not observed.pods[pool], timeout=timeout, what=f"pool {pool}"
        )
    except TimeoutError as exc:
        pods = ", ".join(sorted(observed.pods[pool])) or "none"
        raise TimeoutError(f"{exc}: not back at 0: replicas {observed.current(pool)}, pods {pods}") from None


async def settle(api: Api, observed: Observed, pool: str, *, since: float, grace: float) -> tuple[float, bool]:
    """Seconds from ``since`` until the pool is back at 0 replicas with no pod, and whether it needed a nudge.

    When a pool's last runs finish, only the workers know: the service signals the controller when a pool's queue
    changes or a worker comes or goes, not when a run ends. A pool may therefore stay up after its last run. After
    ``grace`` seconds the WorkerPool gets an annotation, as a person could, which makes the controller look again.
    """
    try:
        await observed.until(lambda: observed.current(pool) == 0, timeout=grace, what=f"pool {pool} at 0")
        nudged = False
    except TimeoutError:
        note = {"metadata": {"annotations": {"bench.workpath.dev/nudged": f"{time.time():.3f}"}}}
        await api.send("PATCH", f"{api.pools}/{pool}", note, patch=True)
        nudged = True
    await back_to_zero(observed, pool, timeout=60)
    return first_after(observed.replicas[pool], since, lambda r: r == 0) - since, nudged


async def measure_zero(api: Api, observed: Observed, options: argparse.Namespace) -> dict[str, Any]:
    """1. created -> replicas patched from 0, and deleted -> back at 0, with no kubelet."""
    pool = "zero"
    await new_pool(api, observed, pool, pool_spec(slots=4, max_replicas=5, delay=0))
    up, down = [], []
    for n in range(options.trials):
        name = f"zero-{n}"
        sent = time.perf_counter()
        await api.create_routine(name, seconds=0.1)
        await observed.until(lambda: (observed.current(pool) or 0) >= 1, timeout=30, what=f"{name}: replicas >= 1")
        up.append(first_after(observed.replicas[pool], sent, lambda r: r >= 1) - sent)
        deleted = time.perf_counter()
        await api.send("DELETE", f"{api.routines}/{name}")
        await back_to_zero(observed, pool, timeout=30)
        down.append(first_after(observed.replicas[pool], deleted, lambda r: r == 0) - deleted)
    await api.send("DELETE", f"{api.pools}/{pool}")
    return {"created_to_replicas_s": up, "deleted_to_zero_s": down}


async def measure_start(api: Api, observed: Observed, options: argparse.Namespace) -> dict[str, Any]:
    """2. created -> replicas patched -> pod Running -> Routine Running, from 0, on a new pod each time."""
    pool = "start"
    await new_pool(api, observed, pool, pool_spec(slots=4, max_replicas=5, delay=0))
    figures: dict[str, list[Any]] = {"replicas_s": [], "pod_running_s": [], "routine_running_s": [], "to_zero": []}
    for n in range(options.start_trials):
        name = f"start-{n}"
        sent = time.perf_counter()
        await api.create_routine(name, seconds=0.1)
        await observed.until(functools.partial(observed.finished, [name]), timeout=90, what=f"{name} to finish")
        seen = observed.routines[name]
        if "Succeeded" not in seen.phases:
            raise RuntimeError(f"{name} did not succeed: {seen}")
        running = min(seen.phases[phase] for phase in ("Running", "Succeeded") if phase in seen.phases)
        figures["routine_running_s"].append(running - sent)
        figures["replicas_s"].append(first_after(observed.replicas[pool], sent, lambda r: r >= 1) - sent)
        figures["pod_running_s"].append(first_after(observed.pod_running[pool], sent, lambda _: True) - sent)
        figures["to_zero"].append(await settle(api, observed, pool, since=seen.phases["Succeeded"], grace=3))
    await api.send("DELETE", f"{api.pools}/{pool}")
    return figures


async def measure_bursts(
    api: Api, observed: Observed, options: argparse.Namespace, markers: pathlib.Path
) -> dict[str, Any]:
    """3. Bursts with pauses around the scale-down delay: interrupted runs, scale-ups and downs, peak replicas."""
    pool, rng = "bursts", random.Random(options.seed)
    await new_pool(
        api, observed, pool, pool_spec(slots=options.slots, max_replicas=options.max_replicas, delay=options.delay)
    )
    names: list[str] = []
    figures: dict[str, Any] = {"pauses_s": [], "replicas_at_each_burst": []}
    started = time.perf_counter()
    for burst in range(options.bursts):
        batch = [f"burst-{burst}-{n}" for n in range(options.burst_size)]
        names += batch
        figures["replicas_at_each_burst"].append(observed.current(pool))
        nap = functools.partial(api.create_routine, markers=str(markers))
        await asyncio.gather(*(nap(name, seconds=round(rng.uniform(0.2, 1.0), 2)) for name in batch))
        await observed.until(functools.partial(observed.finished, batch), timeout=120, what=f"burst {burst} done")
        if burst < options.bursts - 1:
            figures["pauses_s"].append(round(rng.uniform(0.5, 1.5) * options.delay, 2))
            await asyncio.sleep(figures["pauses_s"][-1])
    figures["load_seconds"] = time.perf_counter() - started
    last_done = max(min(observed.routines[name].phases.get(p, math.inf) for p in FINISHED) for name in names)
    figures["last_done_to_zero_s"], figures["nudged_to_zero"] = await settle(
        api, observed, pool, since=last_done, grace=options.delay + 3
    )
    return figures | await tally(api, observed, pool, names=names, markers=markers)


async def tally(api: Api, observed: Observed, pool: str, *, names: list[str], markers: pathlib.Path) -> dict[str, Any]:
    """The interrupted runs (attempt > 1, a reason that says so, or two start markers) and the scaling decisions."""
    history = [replicas for _, replicas in observed.replicas[pool] if replicas >= 0]
    seen_up, seen_down = (
        sum(b > a for a, b in itertools.pairwise(history)),
        sum(b < a for a, b in itertools.pairwise(history)),
    )
    deadline, events = time.monotonic() + 5, []  # the recorder posts Events in the background: let them land
    while time.monotonic() < deadline:
        events = await api.pool_events(pool)
        if sum(reason in ("ScaledUp", "ScaledDown") for reason, _ in events) >= seen_up + seen_down:
            break
        await asyncio.sleep(0.2)
    downs = [message for reason, message in events if reason == "ScaledDown"]
    starts = collections.Counter(path.name.split(".")[1] for path in markers.glob("started.*"))
    seen = [observed.routines[name] for name in names]
    return {
        "runs": len(names),
        "succeeded": sum("Succeeded" in routine.phases for routine in seen),
        "interrupted": [
            name
            for name, routine in zip(names, seen, strict=True)
            if routine.attempt > 1 or routine.reasons & INTERRUPTED_REASONS or starts[routine.uid] > 1
        ],
        "start_markers": sum(starts.values()),
        "started_twice": sum(count > 1 for count in starts.values()),
        "reasons_seen": sorted(set().union(*(routine.reasons for routine in seen))),
        "scaled_up_events": sum(reason == "ScaledUp" for reason, _ in events),
        "scaled_down_events": len(downs),
        "scaled_down_while_running": sum(int(m.group(1)) > 0 for d in downs if (m := re.search(r"running (\d+)", d))),
        "replicas_changes_seen": {"up": seen_up, "down": seen_down},
        "replicas_history": history,
        "peak_replicas": max(history, default=0),
    }


async def measure(
    cluster: controlplane.Cluster, namespace: str, workdir: pathlib.Path, options: argparse.Namespace
) -> dict[str, Any]:
    api, observed = Api(cluster, namespace), Observed()
    watches = api.watch_all(observed)
    results: dict[str, Any] = {}
    running: kubelet.ProcessKubelet | None = None
    try:
        if "zero" in options.measures:
            results["zero"] = await measure_zero(api, observed, options)
        if {"start", "bursts"} & {*options.measures}:
            running = kubelet.ProcessKubelet(cluster, node_names=NODES)
            await asyncio.to_thread(running.start)
        if "start" in options.measures:
            results["start"] = await measure_start(api, observed, options)
        if "bursts" in options.measures:
            markers = workdir / "markers"
            markers.mkdir()
            results["bursts"] = await measure_bursts(api, observed, options, markers)
        return results
    finally:
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        await api.session.close()
        if running is not None:
            await asyncio.to_thread(running.stop)


def start_operator(
    cluster: controlplane.Cluster, namespace: str, workdir: pathlib.Path, *, log_level: str
) -> operators.OperatorProcess:
    """``python -m workpath_operator`` for one namespace, running WorkerPools, with its default settings.

    Only the Events budget is raised, so that no scaling Event is dropped under the bursts' Routine Events.
    """
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "WORKPATH_"))}
    env |= {"KUBECONFIG": str(cluster.kubeconfig), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "workpath_operator", "--namespace", namespace, "--port", str(port)]
    argv += [f"--token={secrets.token_hex(16)}", f"--worker-url=ws://127.0.0.1:{port}/v1/workers"]
    argv += ["--log-level", log_level, "--events-per-second", "500", "--event-burst", "1000"]
    operator = operators.OperatorProcess("operator", argv, env=env, log=workdir / "operator.log", port=port)
    try:
        operator.wait_ready(timeout=60)
    except BaseException:
        operator.stop()
        raise
    return operator


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def spread(values: list[float]) -> str:
    return f"p50 {ms(operator_bench.quantile(values, 0.5))} · p99 {ms(operator_bench.quantile(values, 0.99))}"


def zero_rows(zero: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    trials, keda = len(zero["created_to_replicas_s"]), f"KEDA: up to {KEDA_POLLING:g} s, {KEDA_POLLING / 2:g} s mean"
    return [
        (f"1. created → replicas patched from 0 ({trials} trials)", spread(zero["created_to_replicas_s"]), keda),
        ("   Routine deleted → replicas 0 (delay 0)", spread(zero["deleted_to_zero_s"]), ""),
    ]


def start_rows(start: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    trials, keda = len(start["routine_running_s"]), f"KEDA: the same + up to {KEDA_POLLING:g} s"
    settled = [seconds for seconds, nudged in start["to_zero"] if not nudged]
    return [
        (f"2. created → Running on a new pod ({trials} trials)", spread(start["routine_running_s"]), keda),
        ("   created → replicas patched", spread(start["replicas_s"]), ""),
        ("   created → worker pod Running", spread(start["pod_running_s"]), ""),
        ("   Succeeded → replicas 0 (delay 0)", spread(settled) if settled else "never", ""),
        ("   pool stayed up after its run, nudged", f"{trials - len(settled)} of {trials}", "0"),
    ]


def burst_rows(bursts: Mapping[str, Any], options: argparse.Namespace) -> list[tuple[str, str, str]]:
    runs, seen = bursts["runs"], bursts["replicas_changes_seen"]
    shape = f"{options.bursts} bursts x {options.burst_size} runs of 0.2-1 s, delay {options.delay} s"
    back = f"{bursts['last_done_to_zero_s']:.1f} s" + (" (nudged)" if bursts["nudged_to_zero"] else "")
    return [
        (f"3. runs interrupted by scale-down ({shape})", f"{len(bursts['interrupted'])} of {runs}", "0"),
        ("   runs Succeeded", f"{bursts['succeeded']} of {runs}", str(runs)),
        (
            "   scale-ups / scale-downs (pool Events)",
            f"{bursts['scaled_up_events']} / {bursts['scaled_down_events']}",
            "",
        ),
        ("   replicas raised / lowered (Deployment watch)", f"{seen['up']} / {seen['down']}", ""),
        ("   scale-downs while runs were running", str(bursts["scaled_down_while_running"]), "> 0: the case is tried"),
        ("   peak replicas", f"{bursts['peak_replicas']} (max {options.max_replicas})", ""),
        ("   replicas when each burst came", " ".join(map(str, bursts["replicas_at_each_burst"])), ""),
        ("   last run done → replicas 0", back, f"~{options.delay} s"),
        ("   load time (first create → last burst done)", f"{bursts['load_seconds']:.1f} s", ""),
    ]


def show(results: Mapping[str, Any], options: argparse.Namespace) -> None:
    table = rich.table.Table(title="WorkerPool autoscaling (bench.pools)")
    for column in ("measure", "value", "reference / target"):
        table.add_column(column)
    found = zero_rows(results["zero"]) if "zero" in results else []
    found += start_rows(results["start"]) if "start" in results else []
    found += burst_rows(results["bursts"], options) if "bursts" in results else []
    for row in found:
        table.add_row(*row)
    console = rich.console.Console(width=160)
    console.print(table)
    console.print(
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}; control plane, operator, "
        f"this client and every worker pod share them. Pool: {options.slots} slots a worker, max "
        f"{options.max_replicas} replicas, scaleDownDelaySeconds {options.delay} in the bursts (0 in 1 and 2)."
    )


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(
        prog="python -m bench.pools",
        description=__doc__.split("\n\n")[0],
        epilog="Measures (--measures): " + __doc__.split("\n\n", 3)[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    found.add_argument("--trials", type=int, default=30, help="trials of measure 1, created → replicas from 0 (30)")
    found.add_argument("--start-trials", type=int, default=8, help="trials of measure 2, created → Running (8)")
    found.add_argument("--bursts", type=int, default=6, help="bursts of measure 3 (6)")
    found.add_argument("--burst-size", type=int, default=30, help="Routines per burst (30)")
    found.add_argument("--delay", type=int, default=1, help="the bursts pool's scaleDownDelaySeconds (1)")
    found.add_argument("--slots", type=int, default=4, help="slots of each worker of the bursts pool (4)")
    found.add_argument("--max-replicas", type=int, default=5, help="maxReplicas of the bursts pool (5)")
    found.add_argument("--seed", type=int, default=7, help="seed of the run durations and pauses (7)")
    found.add_argument("--measures", nargs="+", choices=MEASURES, default=MEASURES, help="which to run (all)")
    found.add_argument(
        "--log-level", default="warning", choices=("debug", "info", "warning"), help="the operator's (warning)"
    )
    found.add_argument("--json", type=pathlib.Path, help="also write the raw figures (seconds) to this file")
    return found


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    with controlplane.Cluster.start() as cluster:
        namespace = cluster.create_namespace("bench-pools")
        workdir = cluster.workdir / "bench-pools"
        workdir.mkdir()
        operator = start_operator(cluster, namespace, workdir, log_level=options.log_level)
        try:
            results = asyncio.run(measure(cluster, namespace, workdir, options))
        except BaseException:
            print("operator log:\n" + operator.tail(80), file=sys.stderr)
            raise
        finally:
            operator.stop()
    show(results, options)
    if options.json:
        machine = {"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
        figures = {"machine": machine, "options": vars(options) | {"json": str(options.json)}, "results": results}
        options.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
