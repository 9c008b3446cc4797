"""Small tensor primitives shared by several metrics (class statistics, PCA, covariances).

All functions are device-agnostic: they compute on the device and dtype of their inputs.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import torch

__all__ = ["one_hot", "class_counts", "class_means", "gram", "covariance", "within_class_covariance",
           "top_principal_components", "minmax", "one_cpu_thread"]


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


def gram(features: torch.Tensor) -> torch.Tensor:
    """``features.T @ features`` (``[D, D]``); on CPU a BLAS ``syrk`` computes one triangle, half the work."""
    if features.device.type != "cpu" or features.dtype not in (torch.float32, torch.float64) or features.requires_grad:
        return features.T @ features
    syrk = scipy.linalg.blas.dsyrk if features.dtype == torch.float64 else scipy.linalg.blas.ssyrk
    upper = torch.from_numpy(syrk(1.0, features.numpy().T, trans=0, lower=0))
    return upper.triu() + upper.triu(1).T


def covariance(features: torch.Tensor, *, ddof: int = 1) -> torch.Tensor:
    """``[D, D]`` sample covariance (``ddof=1`` as ``np.cov``; ``ddof=0`` for the population one)."""
    centred = features - features.mean(dim=0)
    return gram(centred) / (len(features) - ddof)


def within_class_covariance(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Prior-weighted within-class scatter ``sum_c (n_c/N) Cov_c`` with population covariances (LDA's ``S_w``)."""
    centred = features - class_means(features, labels, num_classes)[labels]
    return gram(centred) / len(features)


def _leading_eigenpairs(gram: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest ``k`` eigenvalues (descending, clamped at 0) and eigenvectors of a symmetric PSD matrix."""
    m = gram.shape[0]
    if gram.device.type == "cpu":
        # A partial solver (LAPACK syevr) is several times faster than a full eigh on CPU.
        values, vectors = scipy.linalg.eigh(gram.numpy(), subset_by_index=[m - k, m - 1])
        values, vectors = torch.from_numpy(values.copy()), torch.from_numpy(np.ascontiguousarray(vectors))
    else:
        values, vectors = torch.linalg.eigh(gram)
        values, vectors = values[m - k:], vectors[:, m - k:]
    return values.flip(0).clamp_min(0), vectors.flip(1)


def top_principal_components(features: torch.Tensor, n_components: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``[N, k]`` and explained variances ``[k]`` (``ddof=1``) of the ``k`` leading principal components.

    The exact PCA projection, computed from the smaller Gram matrix
    (``D x D`` or ``N x N``) with a partial eigensolver: much faster than a full SVD when ``k`` is
    small (e.g. PCA-32/64 of 2048-d features). ``k`` is capped at ``min(N, D)``. Signs follow
    scikit-learn >= 1.5 (``svd_flip(u_based_decision=False)``: the largest-magnitude loading of each
    component is positive), which matters for sign-sensitive metrics such as PARC.
    """
    n, d = features.shape
    k = min(int(n_components), n, d)
    centred = features - features.mean(dim=0)
    if d <= n:
        variances, components = _leading_eigenpairs(gram(centred), k)
    else:
        variances, left = _leading_eigenpairs(gram(centred.T), k)
        components = centred.T @ left  # loadings up to a positive scale per column, enough for the signs
    signs = torch.sign(components[torch.argmax(components.abs(), dim=0), torch.arange(k, device=features.device)])
    signs[signs == 0] = 1
    if d <= n:
        scores = centred @ (components * signs)
    else:
        scores = left * variances.sqrt() * signs
    return scores, variances / (n - 1)


def minmax(values: torch.Tensor) -> torch.Tensor:
    """Min-max scale to ``[0, 1]`` (all zeros when the values are constant), as the zoo-relative metrics do."""
    span = values.max() - values.min()
    return torch.zeros_like(values) if span == 0 else (values - values.min()) / span


@contextlib.contextmanager
def one_cpu_thread(device: torch.device | str | None = "cpu") -> Iterator[None]:
    """Run torch on one CPU thread inside the block (no effect for other devices); the count is restored after.

    For many tiny operations (ITM's training steps, the bootstrap's 64-d resamples) a second thread only
    adds synchronisation, and on a loaded machine it waits for a descheduled thread: measured 73 s vs
    26 s for 100 ITM steps at N = 50000 and ~30x for the bootstrap's resamples, load average 10.
    """
    if device is not None and torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
