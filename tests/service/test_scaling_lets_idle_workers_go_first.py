"""Scale-down lets idle workers go first: a busy worker is never chosen (with too few idle ones it scales down by the
idle ones now, the rest later), and every pod gets a pod-deletion-cost so that the ReplicaSet deletes the chosen."""

from __future__ import annotations

from workpath_operator.service import scaling

W = scaling.WorkerLoad


def test_idle_workers_go_and_busy_ones_stay() -> None:
    workers = [W("a", busy=3), W("b"), W("c", busy=1), W("d")]

    down = scaling.choose_victims(workers, target=2)

    assert down.victims == ("b", "d")
    assert down.replicas == 2
    assert down.costs == {"a": 3, "b": scaling.VICTIM_COST, "c": 1, "d": scaling.VICTIM_COST}


def test_the_victims_are_the_cheapest_pods() -> None:
    down = scaling.choose_victims([W("a", busy=1), W("b"), W("c"), W("d", busy=7)], target=3)

    (victim,) = down.victims
    assert down.costs[victim] < min(cost for pod, cost in down.costs.items() if pod != victim)
    assert down.costs["d"] > down.costs["a"] > down.costs["c"]


def test_disconnected_workers_go_before_connected_idle_ones() -> None:
    down = scaling.choose_victims([W("a"), W("b", connected=False), W("c")], target=2)

    assert down.victims == ("b",)


def test_with_too_few_idle_workers_it_scales_down_by_the_idle_ones_now() -> None:
    down = scaling.choose_victims([W("a", busy=1), W("b"), W("c", busy=2)], target=0)

    assert down.victims == ("b",)
    assert down.replicas == 2
    later = scaling.choose_victims([W("a"), W("c", busy=2)], target=0)
    assert (later.victims, later.replicas) == (("a",), 1)


def test_all_busy_means_no_scale_down_yet() -> None:
    down = scaling.choose_victims([W("a", busy=1), W("b", busy=1)], target=0)

    assert (down.victims, down.replicas) == ((), 2)
    assert down.costs == {"a": 1, "b": 1}


def test_the_choice_does_not_depend_on_the_order_given() -> None:
    workers = [W("d"), W("c"), W("b", busy=1), W("a")]

    assert scaling.choose_victims(workers, target=2).victims == ("a", "c")
    assert scaling.choose_victims(list(reversed(workers)), target=2).victims == ("a", "c")


def test_nothing_goes_when_the_target_is_not_below_the_workers() -> None:
    workers = [W("a"), W("b", busy=1)]

    assert scaling.choose_victims(workers, target=2) == scaling.ScaleDown(
        replicas=2, victims=(), costs={"a": 0, "b": 1}
    )
    assert scaling.choose_victims(workers, target=5).replicas == 5
