"""The Celery tasks of ``bench.versus``: the workloads of ``bench.versus_routines``, as a Celery user writes them.

Runs only in the Celery virtualenv (``scripts/setup-celery-bench.sh``): the worker loads it with ``celery -A
bench.celery_tasks worker`` and the driver (``bench.celery_driver``) submits from it. It imports nothing from
workpath. Redis is both the broker and the result backend, its URL in ``BENCH_REDIS_URL``.

The configuration is the one a user tuning for short tasks would pick, and no more: JSON, acks early (the
default), a prefetch multiplier raised for short tasks (Celery's docs say so for many short tasks), no task
events, and the worker started without gossip, mingle and heartbeats (``bench.versus_celery``).
"""

from __future__ import annotations

import os
from typing import Any

import celery

QUEUE = "bench"

#: Messages each pool slot may reserve ahead: Celery's docs advise a high multiplier for many short tasks.
PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_CELERY_PREFETCH", "16"))

app = celery.Celery("bench", broker=os.environ.get("BENCH_REDIS_URL"), backend=os.environ.get("BENCH_REDIS_URL"))
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    task_acks_late=False,
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    worker_send_task_events=False,
    task_send_sent_event=False,
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.collect")
def collect(results: list[Any]) -> int:
    """The chord's body: runs once every child has finished, with their results."""
    return len(results)


@app.task(name="bench.fanout", bind=True)
def fanout(self: celery.Task, count: int) -> None:
    """A parent that calls ``count`` children and returns once they are done.

    Celery's way: blocking on a group's results inside a task is refused (``RuntimeError: Never call result.get()
    within a task``), so the parent replaces itself with a chord (the children, then ``collect``): the caller's
    ``AsyncResult`` of this task resolves to the chord body's result.
    """
    raise self.replace(celery.chord((noop.s() for _ in range(count)), collect.s()))
