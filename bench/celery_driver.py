"""The Celery client of ``bench.versus``: one long-lived process in the Celery virtualenv, driven over stdin/stdout.

    BENCH_REDIS_URL=redis://127.0.0.1:PORT/0 VENV/bin/python -m bench.celery_driver

Each line on stdin is a JSON request ``{"workload": "throughput"|"latency"|"fanout", "count": N}``; each answer
is one JSON line ``{"seconds": total, "samples": [seconds, ...]}`` (as ``bench.versus_sides.Outcome`` says).
It stays up between requests so that the bench can interleave Celery and workpath repetitions without paying
Celery's import and connection set-up each time, as a long-lived application would not. It imports nothing
from workpath (the first line it writes says Celery's versions).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import celery
import redis

from bench import celery_tasks

#: Seconds one ``.get()`` may wait before the driver gives up on the workload.
RESULT_TIMEOUT = 300.0


def throughput(count: int) -> list[float]:
    """All submitted with ``.delay()``, then each result awaited with ``.get()``."""
    started = time.perf_counter()
    results = [celery_tasks.noop.delay() for _ in range(count)]
    submitted = time.perf_counter() - started
    for result in results:
        result.get(timeout=RESULT_TIMEOUT)
    return [submitted]


def latency(count: int) -> list[float]:
    """One at a time: ``noop.delay().get()``, each timed."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        celery_tasks.noop.delay().get(timeout=RESULT_TIMEOUT)
        samples.append(time.perf_counter() - started)
    return samples


def fanout(count: int) -> list[float]:
    """The parent (a chord of ``count`` children underneath) submitted and awaited."""
    children = celery_tasks.fanout.delay(count).get(timeout=RESULT_TIMEOUT)
    if children != count:
        raise RuntimeError(f"the fan-out collected {children} children, not {count}")
    return []


WORKLOADS: dict[str, Callable[[int], list[float]]] = {"throughput": throughput, "latency": latency, "fanout": fanout}


def main() -> int:
    celery_tasks.app.connection_for_write().ensure_connection(max_retries=3)
    print(json.dumps({"celery": celery.__version__, "redis": redis.__version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        samples = WORKLOADS[request["workload"]](int(request["count"]))
        answer = {"seconds": time.perf_counter() - started, "samples": samples}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
