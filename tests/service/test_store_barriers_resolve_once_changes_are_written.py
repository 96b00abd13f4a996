"""Run stores' barriers: the memory store's resolves at once; the SQLite store's once the batch holding every change
made before it is committed (the rows are in the file), and at once when nothing changed since the last commit."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import AsyncIterator

import pytest

from tests import waiting
from tests.service import fakes
from workpath import directives
from workpath_operator.service import runs, stores


def a_run() -> runs.Run:
    return runs.Run(run_id=runs.new_run_id(), spec=fakes.spec(), created_at=directives.now())


def rows_in(path: pathlib.Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {run_id for (run_id,) in db.execute("SELECT run_id FROM runs")}


@pytest.fixture
async def sqlite_store(tmp_path: pathlib.Path) -> AsyncIterator[stores.SqliteRunStore]:
    store = stores.SqliteRunStore(str(tmp_path / "runs.db"), flush_interval=0.05)
    await store.start()
    yield store
    await store.close()


async def test_the_memory_store_is_written_at_once() -> None:
    store = stores.MemoryRunStore()
    assert store.barrier().done()
    store.run_changed(a_run())
    assert store.barrier().done()


async def test_a_sqlite_barrier_resolves_once_the_changes_before_it_are_committed(
    sqlite_store: stores.SqliteRunStore, tmp_path: pathlib.Path
) -> None:
    assert sqlite_store.barrier().done()
    run = a_run()
    sqlite_store.run_changed(run)
    barrier = sqlite_store.barrier()
    assert not barrier.done()
    await waiting.eventually(barrier.done, what="the batch to be committed")
    assert run.run_id in rows_in(tmp_path / "runs.db")
    assert sqlite_store.barrier().done()


async def test_a_sqlite_barrier_waits_for_changes_made_during_a_commit(sqlite_store: stores.SqliteRunStore) -> None:
    first, second = a_run(), a_run()
    sqlite_store.run_changed(first)
    before = sqlite_store.barrier()
    await waiting.eventually(before.done, what="the first batch")
    sqlite_store.run_changed(second)
    after = sqlite_store.barrier()
    assert not after.done()
    await waiting.eventually(after.done, what="the second batch")


async def test_closing_writes_what_is_dirty_and_resolves_its_barriers(tmp_path: pathlib.Path) -> None:
    store = stores.SqliteRunStore(str(tmp_path / "runs.db"), flush_interval=3600)
    await store.start()
    run = a_run()
    store.run_changed(run)
    barrier = store.barrier()
    await store.close()
    assert barrier.done() and not barrier.cancelled()
    assert run.run_id in rows_in(tmp_path / "runs.db")
