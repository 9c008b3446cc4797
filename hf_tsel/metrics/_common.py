"""Small tensor primitives shared by several metrics (class statistics, PCA, covariances).

All functions are device-agnostic: they compute on the device and dtype of their inputs.
"""

from __future__ import annotations

import torch

__all__ = ["one_hot", "class_counts", "class_means", "covariance", "within_class_covariance", "pca", "minmax"]


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[N, C]`` one-hot matrix of ``labels`` in ``0..C-1``."""
    return torch.nn.functional.one_hot(labels, num_classes).to(dtype)


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Number of samples per class, ``[C]`` int64."""
    return torch.bincount(labels, minlength=num_classes)


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[C, D]`` mean feature of each class."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    return sums / class_counts(labels, num_classes).to(features.dtype)[:, None]


def covariance(features: torch.Tensor, *, ddof: int = 1) -> torch.Tensor:
    """``[D, D]`` sample covariance (``ddof=1`` as ``np.cov``; ``ddof=0`` for the population one)."""
    centred = features - features.mean(dim=0)
    return centred.T @ centred / (len(features) - ddof)


def within_class_covariance(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Prior-weighted within-class scatter ``sum_c (n_c/N) Cov_c`` with population covariances (LDA's ``S_w``)."""
    centred = features - class_means(features, labels, num_classes)[labels]
    return centred.T @ centred / len(features)


def pca(features: torch.Tensor, n_components: int | float) -> torch.Tensor:
    """Project centred ``features`` onto their leading principal components (exact SVD).

    ``n_components`` is a count, or a fraction in (0, 1) of the variance to keep (the smallest
    number of components whose explained variance reaches it, as scikit-learn's ``PCA(0.8)``).
    Signs follow scikit-learn's ``svd_flip`` convention so results are reproducible.
    """
    centred = features - features.mean(dim=0)
    u, s, vh = torch.linalg.svd(centred, full_matrices=False)
    if isinstance(n_components, float) and 0 < n_components < 1:
        ratio = torch.cumsum(s**2, 0) / torch.sum(s**2)
        k = int(torch.searchsorted(ratio, torch.tensor(n_components, dtype=ratio.dtype, device=ratio.device),
                                   right=True)) + 1
    else:
        k = int(n_components)
    k = min(k, len(s))
    # svd_flip (u-based): the largest-magnitude entry of each left singular vector is positive.
    signs = torch.sign(u[torch.argmax(u.abs(), dim=0), torch.arange(u.shape[1], device=u.device)])
    signs[signs == 0] = 1
    return (u[:, :k] * signs[:k]) * s[:k]


def minmax(values: torch.Tensor) -> torch.Tensor:
    """Min-max scale to ``[0, 1]`` (all zeros when the values are constant), as the zoo-relative metrics do."""
    span = values.max() - values.min()
    return torch.zeros_like(values) if span == 0 else (values - values.min()) / span
