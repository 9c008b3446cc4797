"""Linear-probe ground truth: multinomial logistic regression on frozen features.

The regularisation strength is chosen on a stratified held-out part of the training split and
the probe is then refit on the whole training split; the reported accuracy is on the test split.
This is the cheap ground-truth protocol of LogME (You et al., ICML 2021) and of most later
transferability papers' "linear evaluation" tables.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import UserError

DEFAULT_C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one linear probe: test accuracy and the chosen inverse regularisation ``c``."""

    accuracy: float
    c: float
    validation_accuracy: float
    num_train: int
    num_test: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_2d(name: str, features: Any) -> np.ndarray:
    array = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
    if array.ndim != 2 or len(array) == 0:
        raise UserError(f"{name} must be a non-empty [N, D] array, got shape {array.shape}; pass pooled features")
    if not np.isfinite(array).all():
        raise UserError(f"{name} contain NaN or infinite values; re-extract the features")
    return array


def _fit(train_x: np.ndarray, train_y: np.ndarray, c: float, max_iter: int, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings():
        # A probe stopped at max_iter is still a valid (slightly under-fit) probe for ranking purposes.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train_x, train_y)
    return probe


def linear_probe(train_features: Any, train_labels: Any, test_features: Any, test_labels: Any, *,
                 c_grid: Sequence[float] = DEFAULT_C_GRID, validation_fraction: float = 0.2, seed: int = 0,
                 max_iter: int = 500) -> ProbeResult:
    """Test accuracy of a logistic-regression probe whose ``C`` is tuned on a held-out split.

    Features are standardised with the training statistics. ``C`` is picked by accuracy on a
    stratified ``validation_fraction`` of the training split (ties go to the stronger
    regularisation), then the probe is refit on the full training split.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 40)
        >>> x = rng.normal(size=(120, 5)) + 3 * np.eye(5)[y]
        >>> linear_probe(x[::2], y[::2], x[1::2], y[1::2]).accuracy > 0.9
        True
    """
    from sklearn.model_selection import train_test_split

    train_x, test_x = _as_2d("train features", train_features), _as_2d("test features", test_features)
    train_y, test_y = np.asarray(train_labels).ravel(), np.asarray(test_labels).ravel()
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise UserError("features and labels have different lengths; pass one label per feature row")
    if train_x.shape[1] != test_x.shape[1]:
        raise UserError(f"train and test features differ in width ({train_x.shape[1]} vs {test_x.shape[1]}); "
                        "extract both splits with the same model")
    classes, counts = np.unique(train_y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise UserError("the linear probe needs at least 2 classes with 2 training samples each; use more data")
    unseen = sorted(set(np.unique(test_y).tolist()) - set(classes.tolist()))
    if unseen:
        raise UserError(f"test labels {unseen[:5]} never occur in the training split; use a stratified split")
    if not c_grid or min(c_grid) <= 0:
        raise UserError("c_grid must list positive inverse regularisation strengths, e.g. 0.01 0.1 1")
    if not 0 < validation_fraction < 1:
        raise UserError("validation_fraction must lie strictly between 0 and 1")

    n_val = max(len(classes), int(round(validation_fraction * len(train_y))))
    fit_x, val_x, fit_y, val_y = train_test_split(train_x, train_y, test_size=n_val, stratify=train_y,
                                                  random_state=seed)
    best_c, best_val = None, -1.0
    for c in sorted(c_grid):
        val_accuracy = float((_fit(fit_x, fit_y, c, max_iter, seed).predict(val_x) == val_y).mean())
        if val_accuracy > best_val:
            best_c, best_val = float(c), val_accuracy
    probe = _fit(train_x, train_y, best_c, max_iter, seed)
    accuracy = float((probe.predict(test_x) == test_y).mean())
    return ProbeResult(accuracy=accuracy, c=best_c, validation_accuracy=best_val, num_train=len(train_y),
                       num_test=len(test_y))
