"""Demand per pool: a queued run counts toward exactly one pool, chosen the same way every time."""

from __future__ import annotations

import pytest

from workpath_operator.service import demand


def test_a_run_naming_a_pool_counts_toward_that_pool_if_it_serves_the_routine() -> None:
    pools = demand.PoolDemand()
    pools.declare({"reports": ["reports.*"], "etl": ["etl.*"]})
    assert pools.route("reports", "reports.build") == "reports"
    assert pools.route("etl", "reports.build") is None  # the named pool exists but cannot run it
    assert pools.route("missing", "reports.build") is None


@pytest.mark.parametrize(
    ("pools", "routine_id", "expected"),
    [
        ({"any": ["*"], "reports": ["reports.*"]}, "reports.build", "reports"),
        ({"wide": ["reports.*"], "exact": ["reports.build"]}, "reports.build", "exact"),
        ({"short": ["rep*"], "long": ["reports.b*"]}, "reports.build", "long"),
        ({"b": ["reports.*"], "a": ["reports.*"]}, "reports.build", "a"),
        ({"a": ["etl.*"], "b": ["reports.*"]}, "reports.build", "b"),
        ({"a": ["etl.*"]}, "reports.build", None),
    ],
)
def test_a_run_naming_no_pool_counts_toward_the_most_specific_pool(
    pools: dict[str, list[str]], routine_id: str, expected: str | None
) -> None:
    demanded = demand.PoolDemand()
    demanded.declare(pools)
    assert demanded.route(None, routine_id) == expected
    # The choice does not depend on the order the pools are declared in.
    reverse = demand.PoolDemand()
    reverse.declare(dict(reversed(list(pools.items()))))
    assert reverse.route(None, routine_id) == expected


def test_queue_changes_are_counted_and_reported_per_pool() -> None:
    changed: list[str] = []
    pools = demand.PoolDemand(on_change=changed.append)
    pools.declare({"reports": ["reports.*"]})
    for _ in range(3):
        pools.add_queued("reports")
    pools.remove_queued("reports")
    pools.add_queued(None)  # a run no pool serves changes nothing
    assert pools.queued("reports") == 2
    assert pools.queued("etl") == 0
    assert changed == ["reports"] * 4


def test_declaring_pools_again_changes_the_routing_of_new_runs() -> None:
    pools = demand.PoolDemand()
    pools.declare({})
    assert pools.route(None, "reports.build") is None
    pools.declare({"reports": ["reports.*"]})
    assert pools.route(None, "reports.build") == "reports"
    pools.declare({})
    assert pools.route(None, "reports.build") is None
