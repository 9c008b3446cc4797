"""The budget funnel's logic with a fake clock: order, admission, correction by measurements, report, split rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hf_tsel.budget import Budget
from hf_tsel.funnel import (FUNNEL_SHARE_WITH_RACE, Candidate, Funnel, estimate_candidates, funnel_seconds,
                            order_candidates, seconds_left)
from hf_tsel.funnel_costs import REFERENCE_PARAMS, ForwardRate, calibrate_scoring, input_size_of


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def entry(name: str, params: int | None = None, size: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(name=name, hub_id=f"org/{name}", metadata={"params": params} if params else {},
                           preprocessing={"input_size": size} if size else {})


def candidates(**seconds: float) -> list[Candidate]:
    return [Candidate(entry(name), cost) for name, cost in seconds.items()]


def test_the_budget_split_and_the_time_left_for_the_race():
    budget = Budget.parse("30m")
    assert funnel_seconds(budget) == 1800 and funnel_seconds(budget, race=True) == 1800 * FUNNEL_SHARE_WITH_RACE
    assert funnel_seconds(Budget.parse("6ep"), race=True) is None and funnel_seconds(None) is None
    assert seconds_left(budget, started=100.0, now=400.0) == 1500 and seconds_left(Budget.parse("2ep"), 0.0) is None


def test_cached_first_then_cheapest_and_ties_keep_the_zoo_order():
    ordered = order_candidates([*candidates(big=50, a=5, b=5), Candidate(entry("done"), 0.0, cached=True)])
    assert [c.name for c in ordered] == ["done", "a", "b", "big"]


def test_admission_follows_the_clock_and_reserves_the_scoring():
    clock = Clock()
    funnel = Funnel(order_candidates(candidates(a=10, b=20, c=30, d=100)), seconds=100, started=0.0,
                    score_seconds=5, clock=clock)
    planned, left = funnel.plan()  # a, b, c: 60 s of extraction and 15 of scoring; d (100 s) does not fit
    assert [c.name for c in planned] == ["a", "b", "c"] and [c.name for c in left] == ["d"]
    assert funnel.admit(entry("a"))
    clock.now = 80.0  # the first model took far longer than planned
    assert funnel.admit(entry("b")) is False and funnel.admit(entry("c")) is False  # 80 + 20 + 10 > 100
    assert funnel.admitted == ["a"] and funnel.left_out == ["b", "c"]
    report = funnel.report(Budget.parse("100s"))
    assert [m["model"] for m in report["left_out"]] == ["b", "c"]
    assert report["left_out"][0]["estimated_seconds"] == 25.0  # 20 s to extract + 5 s to score
    assert report["budget_to_finish"] == "3m"  # 80 s spent + 60 s for the two: 140 s, rounded up to minutes


def test_measured_models_correct_the_estimates():
    clock = Clock()
    funnel = Funnel(candidates(a=1, b=2, c=4, d=8), seconds=1000, started=0.0, clock=clock)
    watch = funnel.watch(None)
    assert funnel.corrected(8.0) == 8.0  # nothing measured yet
    for name, took in (("a", 3.0), ("b", 6.0), ("c", 12.0)):  # every model takes three times its estimate
        funnel.admit(entry(name))
        clock.now += took
        watch(SimpleNamespace(kind="extracted", model=name))
    assert funnel.corrected(8.0) == pytest.approx(24.0)
    one = Funnel(candidates(a=1, b=100), seconds=1000, started=0.0, clock=clock)
    one.admit(entry("a"))
    clock.now += 2.0
    one.watch(None)(SimpleNamespace(kind="extracted", model="a"))
    assert one.corrected(100.0) == pytest.approx(101.0)  # one measurement: a per-model overhead, not a factor


def test_zoo_parallel_processes_share_the_extraction():
    def planned(processes: int) -> list[str]:
        funnel = Funnel(candidates(a=60, b=60, c=60), seconds=130, started=0.0, processes=processes, clock=Clock())
        return [c.name for c in funnel.plan()[0]]

    assert planned(1) == ["a", "b"] and planned(2) == ["a", "b", "c"]  # two at once, the third ends at 120 s


def test_estimates_use_params_and_input_size_and_flag_unknown_params():
    rate = ForwardRate(seconds_per_unit=1e-12, build_seconds=0.5)
    zoo = [entry("small", 1_000_000, 224), entry("large", 10_000_000, 384), entry("unknown"), entry("done", 5)]
    estimated = {c.name: c for c in estimate_candidates(zoo, rate=rate, num_samples=1000, cached={"done"})}
    assert estimated["done"].extract_seconds == 0 and estimated["done"].cached
    assert estimated["large"].extract_seconds > 20 * estimated["small"].extract_seconds
    assert not estimated["unknown"].params_known
    assert estimated["unknown"].extract_seconds == rate.extract_seconds(params=REFERENCE_PARAMS, input_size=224,
                                                                         num_samples=1000)
    by_size = estimate_candidates([entry("unknown")], rate=rate, num_samples=1000, cached=set(),
                                  weight_bytes=lambda e: 4_000_000)  # 1M float32 parameters on disk
    assert by_size[0].params_known and by_size[0].extract_seconds == estimated["small"].extract_seconds
    assert input_size_of(entry("x", size=[3, 288, 288])) == 288 and input_size_of(entry("y")) == 224


def test_scoring_estimate_times_the_feature_metrics_only():
    labels = np.repeat(np.arange(10), 100)
    assert calibrate_scoring(["logme"], labels, n_boot=0) > 0
    assert calibrate_scoring(["prior:params"], labels, n_boot=0) == 0.0  # reads no features: not timed
