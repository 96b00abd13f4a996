"""A report deferred to the writer's next turn (a run's ``starting``) is sent at once when there is no connection to
defer it on: it then waits in the replay buffer for the next connection, as every report sent while disconnected
does, rather than being lost."""

from __future__ import annotations

from workpath import connecting, settings


def test_deferring_while_disconnected_sends_at_once_and_leaves_nothing_to_forget() -> None:
    connection = connecting.Connection(
        settings.WorkerSettings(url="ws://127.0.0.1:9/v1/workers", worker_id="unit-worker"),
        handlers={},
        on_open=lambda: None,
        on_close=lambda: None,
        on_retry=lambda reason: None,
    )
    sent: list[int] = []
    connection.defer(("run-1", 1), lambda: sent.append(connection.send("a starting report")))
    assert sent == [connecting.UNSENT]  # sent, as unsent: kept for the next connection
    assert connection.forget(("run-1", 1)) is False  # a final report will not fold it: it is on its way
