"""Benchmark of the operator on the test control plane: latency, throughput, CPU and API writes per Routine.

    .venv/bin/python -m bench.operator [--routines 2000] [--rate 250] [--latency-samples 100] [--slots 50]

Starts the test control plane (tests/cluster: kube-apiserver + etcd + controller-manager), the operator
(``python -m workpath_operator``, one namespace) and one ``workpath worker`` with 50 slots, all on this machine.

1. Latency: Routines of ``test.sleep`` (0.3 s, tests/integration/routines.py) created one by one, 10 per second;
   for each, the time from just before the create call until a watch sees ``status.phase`` Running (or later).
2. Throughput: ``--routines`` Routines of the no-op ``bench.noop`` created at ``--rate`` per second, or as fast as
   ``--concurrency`` parallel requests allow; the rate is Routines / (last Succeeded seen - first create sent), and
   the latency under that load is created -> Succeeded per Routine.

CPU seconds come from /proc/PID/stat (user + system) of each process, over the throughput phase; writes from the
API server's ``apiserver_request_total`` counters, over the same phase. Prints a table with the targets:
created -> status Running p50 <= 100 ms, >= 200 Routines/s sustained.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import re
import resource
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp

from tests.cluster import controlplane, processes

REPO = pathlib.Path(__file__).resolve().parents[1]
ROUTINES = "/apis/workpath.dev/v1alpha1/namespaces/{namespace}/routines"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Stack:
    """The operator and the worker as subprocesses; killed on exit."""

    def __init__(
        self, cluster: controlplane.Cluster, namespace: str, workdir: pathlib.Path, options: argparse.Namespace
    ):
        self.port = processes.free_port()
        self.token = secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "WORKPATH_"))}
        env |= {"KUBECONFIG": str(cluster.kubeconfig), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workpath_operator",
                "--namespace",
                namespace,
                "--port",
                str(self.port),
                f"--token={self.token}",
                "--log-level",
                "warning",
                "--status-writers",
                str(options.writers),
                "--status-linger",
                str(options.linger),
            ],
            env=env,
            cwd=REPO,
            stdout=(workdir / "operator.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()
        self.worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workpath",
                "worker",
                "bench.routines",
                "tests.integration.routines",
                "--url",
                f"ws://127.0.0.1:{self.port}/v1/workers",
                f"--token={self.token}",
                "--slots",
                str(options.slots),
                "--worker-id",
                "bench",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=REPO,
            stdout=(workdir / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.wait_for_worker()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.operator.poll() is not None:
                raise SystemExit(f"the operator exited with {self.operator.returncode}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1),
            ):
                return
            time.sleep(0.05)
        raise SystemExit("the operator did not become ready in 60 s")

    def wait_for_worker(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/workers/status", headers={"Authorization": f"Bearer {self.token}"}
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with urllib.request.urlopen(request, timeout=2) as response:
                if any(w["connected"] for w in json.load(response)):
                    return
            time.sleep(0.05)
        raise SystemExit("the worker did not connect in 60 s")

    def close(self) -> None:
        for process in (self.worker, self.operator):
            process.terminate()
        for process in (self.worker, self.operator):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Api:
    """Raw JSON requests and a watch on the Routines of one namespace, as the admin."""

    def __init__(self, cluster: controlplane.Cluster, namespace: str) -> None:
        self.base = cluster.server + ROUTINES.format(namespace=namespace)
        self.server = cluster.server
        self.headers = {"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"}
        self.ssl = ssl.create_default_context(cafile=str(cluster.ca_file))
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl, limit=64))
        #: The first time each Routine was seen started (Running or later) and finished.
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def create(self, name: str, routine_id: str, params: dict[str, Any] | None = None) -> None:
        body = {
            "apiVersion": "workpath.dev/v1alpha1",
            "kind": "Routine",
            "metadata": {"name": name},
            "spec": {"routineID": routine_id, "params": params or {}},
        }
        async with self.session.post(self.base, data=json.dumps(body), headers=self.headers) as response:
            if response.status != 201:
                raise RuntimeError(f"create {name}: {response.status} {await response.text()}")
            await response.read()

    async def watch(self) -> None:
        async with self.session.get(self.base, headers=self.headers) as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        query = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "false"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.base, params=query, headers=self.headers, timeout=timeout) as response:
            async for line in response.content:
                event = json.loads(line)
                routine = event["object"]
                phase = (routine.get("status") or {}).get("phase")
                if phase in (None, "Pending"):
                    continue
                name = routine["metadata"]["name"]
                now = time.perf_counter()
                self.started.setdefault(name, now)
                if phase in ("Succeeded", "Failed", "Cancelled"):
                    self.finished.setdefault(name, now)
                    self.changed.set()

    async def metrics(self) -> dict[tuple[str, str, str], float]:
        """``apiserver_request_total`` summed by (verb, resource, subresource)."""
        async with self.session.get(self.server + "/metrics", headers=self.headers) as response:
            text = await response.text()
        totals: dict[tuple[str, str, str], float] = {}
        for line in text.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
            totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return totals

    async def wait_finished(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not names <= self.finished.keys():
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = len(names - self.finished.keys())
                raise TimeoutError(f"{missing} of {len(names)} Routines not finished after {timeout:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))


def control_plane_pids(cluster: controlplane.Cluster) -> dict[str, int]:
    """The PIDs of the cluster's kube-apiserver and etcd (their command lines name its working directory)."""
    found: dict[str, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if str(cluster.workdir).encode() not in b" ".join(argv):
                continue
            binary = pathlib.Path(argv[0].decode()).name
            if binary in ("kube-apiserver", "etcd"):
                found[binary] = int(entry.name)
    return found


async def run(
    cluster: controlplane.Cluster, stack: Stack, namespace: str, options: argparse.Namespace
) -> list[tuple[str, str, str]]:
    api = Api(cluster, namespace)
    watcher = asyncio.create_task(api.watch(), name="bench-watch")
    rows: list[tuple[str, str, str]] = []
    try:
        await asyncio.sleep(0.5)  # the watch is open

        # 1. latency, unloaded
        sent: dict[str, float] = {}
        for n in range(options.latency_samples):
            name = f"latency-{n}"
            sent[name] = time.perf_counter()
            await api.create(name, "test.sleep", {"seconds": 0.3})
            await asyncio.sleep(0.1)
        await api.wait_finished(set(sent), timeout=60)
        latencies = [(api.started[name] - sent[name]) * 1000 for name in sent]
        rows.append(("created -> status Running, p50", f"{quantile(latencies, 0.5):.1f} ms", "<= 100 ms"))
        rows.append(
            (
                "created -> status Running, p90 / p99",
                f"{quantile(latencies, 0.9):.1f} / {quantile(latencies, 0.99):.1f} ms",
                "",
            )
        )

        # 2. throughput
        pids = {"operator": stack.operator.pid, "worker": stack.worker.pid, **control_plane_pids(cluster)}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        bench_before = resource.getrusage(resource.RUSAGE_SELF)
        writes_before = await api.metrics()
        names = [f"load-{n}" for n in range(options.routines)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)

        load_sent: dict[str, float] = {}
        first = time.perf_counter()

        async def creator() -> None:
            while not queue.empty():
                name = queue.get_nowait()
                if options.rate:  # the n-th create is due n / rate seconds after the first
                    due = first + int(name.rsplit("-", 1)[1]) / options.rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                load_sent[name] = time.perf_counter()
                await api.create(name, "bench.noop")

        await asyncio.gather(*(creator() for _ in range(options.concurrency)))
        created = time.perf_counter()
        await api.wait_finished(set(names), timeout=600)
        last = max(api.finished[name] for name in names)
        await asyncio.sleep(1.0)  # let the last status writes and events land before counting
        writes_after = await api.metrics()
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        bench_after = resource.getrusage(resource.RUSAGE_SELF)

        count = options.routines
        rows.append(("Routines created per second (the client)", f"{count / (created - first):.0f} /s", ""))
        rows.append(("created -> Succeeded, sustained", f"{count / (last - first):.0f} Routines/s", ">= 200 /s"))
        rows.append(("last create -> last Succeeded", f"{(last - created) * 1000:.0f} ms", ""))
        under_load = [(api.finished[name] - load_sent[name]) * 1000 for name in names]
        rows.append(
            (
                "created -> Succeeded under that load, p50 / p99",
                f"{quantile(under_load, 0.5):.0f} / {quantile(under_load, 0.99):.0f} ms",
                "",
            )
        )
        for name in pids:
            used = cpu_after[name] - cpu_before[name]
            rows.append((f"CPU per Routine: {name}", f"{used / count * 1000:.2f} ms ({used:.1f} s)", ""))
        bench_cpu = (bench_after.ru_utime + bench_after.ru_stime) - (bench_before.ru_utime + bench_before.ru_stime)
        rows.append(("CPU per Routine: this client (create + watch)", f"{bench_cpu / count * 1000:.2f} ms", ""))

        def delta(verb: str, resource_: str, sub: str = "") -> float:
            key = (verb, resource_, sub)
            return (writes_after.get(key, 0.0) - writes_before.get(key, 0.0)) / count

        rows.append(("writes per Routine: status patches", f"{delta('PATCH', 'routines', 'status'):.2f}", "minimal"))
        rows.append(("writes per Routine: Events", f"{delta('POST', 'events'):.2f}", ""))
        rows.append(("writes per Routine: kopf (PATCH routines)", f"{delta('PATCH', 'routines'):.2f}", "0"))
        return rows
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await watcher
        await api.session.close()


@contextlib.contextmanager
def running(
    cluster: controlplane.Cluster, namespace: str, workdir: pathlib.Path, options: argparse.Namespace
) -> Iterator[Stack]:
    stack = Stack(cluster, namespace, workdir, options)
    try:
        yield stack
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--routines", type=int, default=2000, help="Routines in the throughput phase")
    parser.add_argument("--latency-samples", type=int, default=100, help="Routines in the latency phase")
    parser.add_argument("--concurrency", type=int, default=32, help="parallel create requests")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="Routines created per second in the throughput phase (0: at once)"
    )
    parser.add_argument("--slots", type=int, default=50, help="slots of the one worker")
    parser.add_argument("--writers", type=int, default=16, help="the operator's --status-writers")
    parser.add_argument("--linger", type=float, default=0.005, help="the operator's --status-linger")
    options = parser.parse_args(argv)

    with controlplane.Cluster.start() as cluster:
        namespace = cluster.create_namespace("bench")
        workdir = cluster.workdir / "bench"
        workdir.mkdir()
        with running(cluster, namespace, workdir, options) as stack:
            rows = asyncio.run(run(cluster, stack, namespace, options))
            log = (workdir / "operator.log").read_text(errors="replace").strip()
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'value':<24}  target")
    print(f"{'-' * width}  {'-' * 24}  ------")
    for measure, value, target in rows:
        print(f"{measure:<{width}}  {value:<24}  {target}")
    pace = f"at {options.rate:g}/s" if options.rate else f"as fast as {options.concurrency} parallel creates go"
    print(
        f"({options.latency_samples} latency samples; {options.routines} no-op Routines created {pace}; "
        f"1 worker x {options.slots} slots; {os.cpu_count()} CPUs shared by everything)"
    )
    if log:
        print("operator log:\n" + log[-3000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
