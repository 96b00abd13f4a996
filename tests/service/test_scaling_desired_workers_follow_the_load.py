"""Desired workers = clamp(ceil((queued + running) / slots), minReplicas, maxReplicas); ScalingLimited when the load
calls for more than maxReplicas workers."""

from __future__ import annotations

import pytest

from workpath_operator.service import scaling


def _now() -> float:
    return 0.0


@pytest.mark.parametrize(
    ("queued", "running", "slots", "bounds", "desired", "limited"),
    [
        (0, 0, 10, (0, 5), 0, False),
        (1, 0, 10, (0, 5), 1, False),
        (0, 1, 10, (0, 5), 1, False),
        (10, 0, 10, (0, 5), 1, False),
        (6, 5, 10, (0, 5), 2, False),
        (0, 0, 10, (2, 5), 2, False),
        (49, 1, 10, (0, 5), 5, False),
        (51, 0, 10, (0, 5), 5, True),
        (3, 0, 1, (0, 3), 3, False),
        (100, 100, 1, (1, 1), 1, True),
    ],
)
def test_desired_workers_are_the_load_over_the_slots_within_the_bounds(
    queued: int, running: int, slots: int, bounds: tuple[int, int], desired: int, limited: bool
) -> None:
    limits = scaling.Limits(slots=slots, min_replicas=bounds[0], max_replicas=bounds[1], scale_down_delay=60)

    recommendation = scaling.Scaler(clock=_now).recommend(scaling.Demand(queued, running), limits=limits)

    assert (recommendation.desired, recommendation.limited) == (desired, limited)
    assert recommendation.wanted == -(-(queued + running) // slots)
    assert recommendation.settles_at is None


@pytest.mark.parametrize(
    ("slots", "bounds", "delay"),
    [(0, (0, 1), 0), (1, (-1, 1), 0), (1, (3, 2), 0), (1, (0, 1), -1)],
    ids=["no-slots", "negative-min", "min-above-max", "negative-delay"],
)
def test_impossible_limits_are_refused(slots: int, bounds: tuple[int, int], delay: float) -> None:
    with pytest.raises(ValueError, match=r"must not be negative|need slots >= 1"):
        scaling.Limits(slots=slots, min_replicas=bounds[0], max_replicas=bounds[1], scale_down_delay=delay)
