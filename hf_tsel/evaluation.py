"""How well a transferability ranking predicts fine-tuned accuracy.

Every function takes the metric's scores (higher is better, as :func:`hf_tsel.metrics.score`
returns them) and the fine-tuned accuracies of the same models, either as ``{model: value}``
mappings (matched by model name) or as two equally long sequences in the same model order.

Example:
    >>> scores = {"vit": 2.1, "resnet": 1.4, "convnext": 1.9, "mobilenet": 0.3}
    >>> accuracy = {"vit": 0.91, "resnet": 0.84, "convnext": 0.92, "mobilenet": 0.75}
    >>> result = evaluate_ranking(scores, accuracy, ks=(1, 3))
    >>> round(result["kendall_tau"], 3), round(result["top1_regret"], 3), result["rel@3"]
    (0.667, 0.01, 1.0)
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence, Union

import numpy as np
from scipy import stats

__all__ = ["weighted_kendall_tau", "kendall_tau", "spearman_rho", "pearson_r", "relative_top_k", "top1_regret",
           "evaluate_ranking"]

Values = Union[Mapping[str, float], Sequence[float], np.ndarray]


def _paired(scores: Values, accuracies: Values) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``(scores, accuracies)`` float arrays; raises ``ValueError`` with a fix on bad input."""
    if isinstance(scores, Mapping) != isinstance(accuracies, Mapping):
        raise ValueError("pass scores and accuracies both as {model: value} mappings or both as sequences "
                         "in the same model order.")
    if isinstance(scores, Mapping):
        missing_acc = sorted(set(scores) - set(accuracies))
        missing_scores = sorted(set(accuracies) - set(scores))
        if missing_acc or missing_scores:
            raise ValueError(f"models do not match: no accuracy for {missing_acc or 'none'}, no score for "
                             f"{missing_scores or 'none'}. Pass the same model names in both mappings.")
        names = sorted(scores)
        score_array = np.array([scores[name] for name in names], dtype=float)
        accuracy_array = np.array([accuracies[name] for name in names], dtype=float)
    else:
        score_array, accuracy_array = np.asarray(scores, dtype=float), np.asarray(accuracies, dtype=float)
        if score_array.ndim != 1 or score_array.shape != accuracy_array.shape:
            raise ValueError(f"scores and accuracies must be 1-D and equally long, got shapes {score_array.shape} "
                             f"and {accuracy_array.shape}.")
    if len(score_array) < 2:
        raise ValueError(f"a ranking needs at least 2 models, got {len(score_array)}. Score more models.")
    if not (np.isfinite(score_array).all() and np.isfinite(accuracy_array).all()):
        raise ValueError("scores and accuracies must be finite numbers; drop models whose score failed.")
    return score_array, accuracy_array


def _correlation(statistic: Callable, scores: Values, accuracies: Values) -> float:
    score_array, accuracy_array = _paired(scores, accuracies)
    # A correlation with a constant side is undefined; scipy would warn and return NaN.
    if np.ptp(score_array) == 0 or np.ptp(accuracy_array) == 0:
        return math.nan
    return float(statistic(score_array, accuracy_array).statistic)


def weighted_kendall_tau(scores: Values, accuracies: Values) -> float:
    """Weighted Kendall τ with hyperbolic weights ``1/(r+1)``, as ``scipy.stats.weightedtau`` with defaults.

    The benchmark measure of SFDA, PED, ETran and NCTI: swaps among the best models weigh more.
    With ``rank=True`` the value is symmetric in its arguments. NaN if either side is constant.

    Example:
        >>> weighted_kendall_tau([3, 2, 1], [0.9, 0.8, 0.7])
        1.0
    """
    return _correlation(stats.weightedtau, scores, accuracies)


def kendall_tau(scores: Values, accuracies: Values) -> float:
    """Kendall τ-b rank correlation (``scipy.stats.kendalltau``); NaN if either side is constant.

    Example:
        >>> kendall_tau([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4])
        0.6666666666666669
    """
    return _correlation(stats.kendalltau, scores, accuracies)


def spearman_rho(scores: Values, accuracies: Values) -> float:
    """Spearman rank correlation ρ (``scipy.stats.spearmanr``); NaN if either side is constant.

    Example:
        >>> spearman_rho([1, 2, 3], [10, 30, 20])
        0.5
    """
    return _correlation(stats.spearmanr, scores, accuracies)


def pearson_r(scores: Values, accuracies: Values) -> float:
    """Pearson linear correlation r of the raw values (``scipy.stats.pearsonr``); NaN if either side is constant.

    Example:
        >>> round(pearson_r([1, 2, 3], [2, 4, 7]), 4)
        0.9934
    """
    return _correlation(stats.pearsonr, scores, accuracies)


def _order_by_score(score_array: np.ndarray) -> np.ndarray:
    # Stable, so tied scores keep their input (or sorted-name) order.
    return np.argsort(-score_array, kind="stable")


def relative_top_k(scores: Values, accuracies: Values, k: int) -> float:
    """Rel@k: best accuracy among the ``k`` highest-scored models divided by the best accuracy overall.

    1.0 means the best model is among the top ``k`` picks.

    Example:
        >>> relative_top_k([3, 2, 1], [0.8, 0.9, 0.5], k=1)
        0.888888888888889
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    score_array, accuracy_array = _paired(scores, accuracies)
    best = accuracy_array.max()
    if best <= 0:
        raise ValueError("Rel@k needs a positive best accuracy; pass accuracies such as 0.83 or 83.0.")
    return float(accuracy_array[_order_by_score(score_array)[:k]].max() / best)


def top1_regret(scores: Values, accuracies: Values) -> float:
    """Best accuracy minus the accuracy of the top-scored model (0 when the metric picks the best model).

    Example:
        >>> round(top1_regret([3, 2, 1], [0.8, 0.9, 0.5]), 3)
        0.1
    """
    score_array, accuracy_array = _paired(scores, accuracies)
    return float(accuracy_array.max() - accuracy_array[_order_by_score(score_array)[0]])


def evaluate_ranking(scores: Values, accuracies: Values, ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """All ranking measures at once: ``weighted_kendall_tau``, ``kendall_tau``, ``spearman_rho``,
    ``pearson_r``, ``rel@k`` for each ``k`` in ``ks``, and ``top1_regret``.

    Example:
        >>> sorted(evaluate_ranking([3, 2, 1], [0.9, 0.8, 0.7], ks=(1,)))
        ['kendall_tau', 'pearson_r', 'rel@1', 'spearman_rho', 'top1_regret', 'weighted_kendall_tau']
    """
    score_array, accuracy_array = _paired(scores, accuracies)
    result = {"weighted_kendall_tau": weighted_kendall_tau(score_array, accuracy_array),
              "kendall_tau": kendall_tau(score_array, accuracy_array),
              "spearman_rho": spearman_rho(score_array, accuracy_array),
              "pearson_r": pearson_r(score_array, accuracy_array)}
    result.update({f"rel@{k}": relative_top_k(score_array, accuracy_array, k) for k in ks})
    result["top1_regret"] = top1_regret(score_array, accuracy_array)
    return result
