"""Ranking measures of hf_tsel.evaluation, checked against hand computations and scipy."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from hf_tsel.evaluation import (evaluate_ranking, kendall_tau, pearson_r, relative_top_k, spearman_rho, top1_regret,
                                weighted_kendall_tau)

SCORES = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7, "e": 0.3}
ACCURACY = {"a": 80.0, "b": 60.0, "c": 85.0, "d": 70.0, "e": 65.0}


def _hand_kendall(x: list[float], y: list[float]) -> float:
    """Kendall tau-a over all pairs (no ties in the inputs used here)."""
    signs = [np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in combinations(range(len(x)), 2)]
    return float(np.mean(signs))


def _hand_weighted_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Vigna's weighted tau with hyperbolic weights 1/(r+1), averaged over the rankings by x and by y.

    This is what ``scipy.stats.weightedtau(x, y)`` computes with its defaults (``rank=True``):
    each pair (i, j) weighs w(r_i) + w(r_j), where r is the rank (0 = largest) of the element in the
    ranking used, and concordance is counted with sign(x_i - x_j) * sign(y_i - y_j).
    """
    def one_side(rank_by: np.ndarray) -> float:
        rank = np.empty(len(rank_by), dtype=int)
        rank[np.argsort(-rank_by, kind="stable")] = np.arange(len(rank_by))
        weight = 1.0 / (rank + 1)
        num = den_x = den_y = 0.0
        for i, j in combinations(range(len(x)), 2):
            w = weight[i] + weight[j]
            num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            den_x += w * np.sign(x[i] - x[j]) ** 2
            den_y += w * np.sign(y[i] - y[j]) ** 2
        return num / math.sqrt(den_x * den_y)

    return (one_side(x) + one_side(y)) / 2


def test_kendall_tau_hand_computed():
    names = sorted(SCORES)
    expected = _hand_kendall([SCORES[n] for n in names], [ACCURACY[n] for n in names])
    assert expected == pytest.approx(0.6)  # 8 concordant pairs, 2 discordant (a-c, c-d)
    assert kendall_tau(SCORES, ACCURACY) == pytest.approx(expected)


def test_weighted_tau_matches_definition_and_scipy():
    x = np.array([SCORES[n] for n in sorted(SCORES)])
    y = np.array([ACCURACY[n] for n in sorted(SCORES)])
    assert weighted_kendall_tau(SCORES, ACCURACY) == pytest.approx(_hand_weighted_tau(x, y), rel=1e-12)
    assert weighted_kendall_tau(x, y) == pytest.approx(stats.weightedtau(x, y).statistic, rel=1e-15)


def test_weighted_tau_weighs_the_top_more():
    accuracy = [0.9, 0.8, 0.7, 0.6, 0.5]
    top_swapped = [4, 5, 3, 2, 1]
    bottom_swapped = [5, 4, 3, 1, 2]
    assert kendall_tau(top_swapped, accuracy) == kendall_tau(bottom_swapped, accuracy)
    assert weighted_kendall_tau(top_swapped, accuracy) < weighted_kendall_tau(bottom_swapped, accuracy)


def test_weighted_tau_is_symmetric_and_scipy_equal_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.normal(size=12), rng.normal(size=12)
        assert weighted_kendall_tau(x, y) == pytest.approx(weighted_kendall_tau(y, x), rel=1e-12)
        assert weighted_kendall_tau(x, y) == pytest.approx(stats.weightedtau(x, y)[0], rel=1e-15)


def test_spearman_and_pearson_hand_computed():
    # ranks of scores: a5 b1 c3 d4 e2; ranks of accuracy: a4 b1 c5 d3 e2 -> sum d^2 = 1+0+4+1+0 = 6
    assert spearman_rho(SCORES, ACCURACY) == pytest.approx(1 - 6 * 6 / (5 * 24))
    x, y = [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]
    # centred: (-1,0,1)·(-1,1,0) = 1; norms sqrt(2) and sqrt(2)
    assert pearson_r(x, y) == pytest.approx(0.5)
    assert pearson_r(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)


def test_rel_k_and_regret_hand_computed():
    # by score: a (80), d (70), c (85), e, b; best overall 85 (c)
    assert relative_top_k(SCORES, ACCURACY, 1) == pytest.approx(80 / 85)
    assert relative_top_k(SCORES, ACCURACY, 2) == pytest.approx(80 / 85)
    assert relative_top_k(SCORES, ACCURACY, 3) == 1.0
    assert relative_top_k(SCORES, ACCURACY, 99) == 1.0
    assert top1_regret(SCORES, ACCURACY) == pytest.approx(5.0)


def test_perfect_ranking():
    result = evaluate_ranking([3, 2, 1], [0.9, 0.5, 0.1], ks=(1, 2))
    assert result == pytest.approx({"weighted_kendall_tau": 1.0, "kendall_tau": 1.0, "spearman_rho": 1.0,
                                    "pearson_r": result["pearson_r"], "rel@1": 1.0, "rel@2": 1.0,
                                    "top1_regret": 0.0})
    assert 0.9 < result["pearson_r"] <= 1.0


def test_mappings_are_matched_by_name_not_order():
    shuffled = dict(reversed(list(ACCURACY.items())))
    assert evaluate_ranking(SCORES, shuffled) == evaluate_ranking(SCORES, ACCURACY)
    names = sorted(SCORES)
    arrays = evaluate_ranking([SCORES[n] for n in names], [ACCURACY[n] for n in names])
    assert arrays == pytest.approx(evaluate_ranking(SCORES, ACCURACY))


@pytest.mark.parametrize("scores, accuracies, message", [
    ({"a": 1.0, "b": 2.0}, {"a": 0.5, "c": 0.7}, "do not match"),
    ({"a": 1.0}, {"a": 0.5}, "at least 2 models"),
    ([1.0, 2.0], [0.5], "equally long"),
    ({"a": 1.0, "b": 2.0}, [0.5, 0.6], "both as"),
    ([1.0, float("nan")], [0.5, 0.6], "finite"),
])
def test_bad_inputs_raise_clear_errors(scores, accuracies, message):
    with pytest.raises(ValueError, match=message):
        evaluate_ranking(scores, accuracies)


def test_rel_k_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        relative_top_k([1, 2], [0.1, 0.2], 0)


def test_constant_scores_give_nan_correlations():
    result = evaluate_ranking([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])
    assert math.isnan(result["kendall_tau"]) and math.isnan(result["pearson_r"])
    assert result["rel@1"] == pytest.approx(0.1 / 0.3)  # ties keep input order: the first model is picked
