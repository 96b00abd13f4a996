"""The scaler scales up on the first report of a higher load, and down only once the load has allowed fewer workers
for the whole scale-down delay (the highest count over the delay window wins, as in the HPA's stabilization). Time
is a fake clock."""

from __future__ import annotations

import pytest

from workpath_operator.service import scaling

LIMITS = scaling.Limits(slots=10, min_replicas=0, max_replicas=10, scale_down_delay=60)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scaler(clock: FakeClock) -> scaling.Scaler:
    return scaling.Scaler(clock=clock)


def _at(clock: FakeClock, scaler: scaling.Scaler, when: float, queued: int, *, limits: scaling.Limits = LIMITS) -> int:
    clock.now = 1000.0 + when
    return scaler.recommend(scaling.Demand(queued=queued), limits=limits).desired


def test_scale_up_is_immediate(clock: FakeClock, scaler: scaling.Scaler) -> None:
    assert _at(clock, scaler, 0, 0) == 0
    assert _at(clock, scaler, 0.001, 1) == 1
    assert _at(clock, scaler, 0.002, 35) == 4


def test_scale_down_waits_for_the_whole_delay(clock: FakeClock, scaler: scaling.Scaler) -> None:
    assert _at(clock, scaler, 0, 40) == 4
    assert _at(clock, scaler, 10, 0) == 4
    assert _at(clock, scaler, 69.9, 0) == 4
    assert _at(clock, scaler, 70, 0) == 0


def test_the_recommendation_says_when_to_ask_again(clock: FakeClock, scaler: scaling.Scaler) -> None:
    _at(clock, scaler, 0, 40)
    clock.now = 1010.0
    waiting = scaler.recommend(scaling.Demand(), limits=LIMITS)

    assert (waiting.desired, waiting.wanted, waiting.settles_at) == (4, 0, 1070.0)
    assert waiting.settles_at is not None
    clock.now = waiting.settles_at
    assert scaler.recommend(scaling.Demand(), limits=LIMITS).desired == 0


def test_a_high_load_reported_once_holds_until_replaced(clock: FakeClock, scaler: scaling.Scaler) -> None:
    # Reported at 0 and not replaced until 100: it was in force for all of the window [40, 100].
    assert _at(clock, scaler, 0, 40) == 4
    assert _at(clock, scaler, 100, 0) == 4
    assert _at(clock, scaler, 159, 0) == 4
    assert _at(clock, scaler, 160, 0) == 0


def test_scale_down_goes_step_by_step_as_higher_loads_leave_the_window(
    clock: FakeClock, scaler: scaling.Scaler
) -> None:
    _at(clock, scaler, 0, 40)
    _at(clock, scaler, 10, 25)
    _at(clock, scaler, 20, 5)

    assert _at(clock, scaler, 69, 5) == 4
    assert _at(clock, scaler, 70, 5) == 3
    assert _at(clock, scaler, 80, 5) == 1


def test_a_spike_during_the_delay_starts_the_wait_again(clock: FakeClock, scaler: scaling.Scaler) -> None:
    _at(clock, scaler, 0, 30)
    _at(clock, scaler, 10, 0)
    assert _at(clock, scaler, 50, 30) == 3
    assert _at(clock, scaler, 51, 0) == 3
    assert _at(clock, scaler, 110, 0) == 3
    assert _at(clock, scaler, 111, 0) == 0


def test_a_brief_dip_does_not_scale_down(clock: FakeClock, scaler: scaling.Scaler) -> None:
    for second in range(0, 300, 2):
        assert _at(clock, scaler, second, 20) == 2
        assert _at(clock, scaler, second + 1, 0) == 2


def test_no_delay_scales_down_at_once(clock: FakeClock, scaler: scaling.Scaler) -> None:
    limits = scaling.Limits(slots=10, min_replicas=1, max_replicas=10, scale_down_delay=0)

    assert _at(clock, scaler, 0, 40, limits=limits) == 4
    assert _at(clock, scaler, 0.5, 0, limits=limits) == 1


def test_new_bounds_apply_at_once(clock: FakeClock, scaler: scaling.Scaler) -> None:
    _at(clock, scaler, 0, 80)
    lowered = scaling.Limits(slots=10, min_replicas=0, max_replicas=3, scale_down_delay=60)
    raised_min = scaling.Limits(slots=10, min_replicas=9, max_replicas=10, scale_down_delay=60)

    assert _at(clock, scaler, 1, 80, limits=lowered) == 3
    assert _at(clock, scaler, 2, 0, limits=raised_min) == 9


def test_more_slots_per_worker_apply_to_the_remembered_load(clock: FakeClock, scaler: scaling.Scaler) -> None:
    _at(clock, scaler, 0, 40)
    bigger = scaling.Limits(slots=20, min_replicas=0, max_replicas=10, scale_down_delay=60)

    assert _at(clock, scaler, 1, 0, limits=bigger) == 2


def test_limited_says_the_current_load_wants_more_than_the_maximum(clock: FakeClock, scaler: scaling.Scaler) -> None:
    clock.now = 0
    assert scaler.recommend(scaling.Demand(queued=101), limits=LIMITS).limited
    clock.now = 1
    after = scaler.recommend(scaling.Demand(queued=0), limits=LIMITS)
    assert (after.desired, after.limited) == (10, False)
