"""Small synthetic feature sets shared by the metric tests."""

from __future__ import annotations

import numpy as np


def one_hot_blobs(separation: float, *, seed: int = 0, n_per_class: int = 40, classes: int = 4,
                  dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs whose class means sit ``separation`` apart along the first ``classes`` axes."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    return rng.normal(size=(len(labels), dim)) + separation * np.eye(dim)[labels], labels
