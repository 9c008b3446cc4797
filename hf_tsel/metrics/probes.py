"""Training-based proxies: how well a cheap classifier trained on the scoring sample itself does.

Two scores that estimate the target accuracy of a frozen backbone directly instead of modelling it:

* ``linear_probe_cv``: cross-validated accuracy of an L2-regularised linear classifier on
  standardised features. The default fits a ridge classifier on one-hot targets, whose exact
  leave-one-out predictions for every regularisation strength come from one eigendecomposition
  (Allen 1974's PRESS identity ``e_(-i) = e_i / (1 - h_ii)``); the strength is the one with the
  smallest leave-one-out squared error (the ridge's own criterion, as scikit-learn's ``RidgeCV``),
  and the score is the leave-one-out *accuracy* at that strength. ``method="logistic"`` is the
  alternative measured against it: stratified k-fold multinomial logistic regression fitted by
  full-batch L-BFGS in torch, its L2 strength chosen inside each training fold.
* ``knn``: leave-one-out k-nearest-neighbour accuracy, the feature-quality check of
  self-supervised learning that Sorkhei et al. (arXiv 2503.18528) found to predict transfer better
  than the classic metrics. Default: cosine similarity, k = 20, votes weighted by ``exp(s / 0.07)``
  (the weighted k-NN of DINO, Caron et al. ICCV 2021, which they follow); ``distance="euclidean"``
  takes plain majority votes.

Both are label-permutation invariant (tied votes count as a fractional hit) and deterministic per seed.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from ._common import gram, one_hot
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["linear_probe_cv", "linear_probe_cv_hits", "knn", "knn_hits", "RIDGE_ALPHAS", "LOGISTIC_DECAYS"]

# Ridge strengths relative to the mean non-zero eigenvalue of the standardised Gram matrix, so one grid
# fits every feature width and sample size; 1e-3 (almost unregularised) .. 1e2 (almost class means).
RIDGE_ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
# L2 weight decays (per sample) tried inside each training fold by the logistic variant.
LOGISTIC_DECAYS: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
# Above this many multiply-adds the Gram matrix and projections run in float32 (as LogME's "auto").
_FLOAT32_ABOVE = 1e9
# Rows of the [rows, N] similarity block of the k-NN search: ~64 MB of float32 at N = 50,000.
_KNN_BLOCK_ELEMENTS = 16_000_000


def _standardised(features: torch.Tensor) -> torch.Tensor:
    """Columns centred and scaled to unit variance; constant columns become 0."""
    centred = features - features.mean(dim=0)
    spread = centred.std(dim=0)
    return centred / torch.where(spread > 0, spread, torch.ones_like(spread))


def _fractional_hits(votes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 for a unique correct argmax, 1/k when the true class is one of k tied maxima, else 0."""
    top = votes == votes.max(dim=1, keepdim=True).values
    return top.gather(1, labels[:, None])[:, 0].double() / top.sum(dim=1)


def _ridge_loo(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, float]:
    """Leave-one-out hits ``[N]`` of the ridge classifier at the PRESS-optimal strength, and that strength's alpha."""
    n, d = features.shape
    work_dtype = torch.float32 if n * min(n, d) * max(n, d) > _FLOAT32_ABOVE else features.dtype
    x = _standardised(features).to(work_dtype)
    targets = one_hot(labels, num_classes, work_dtype)
    class_shares = targets.mean(dim=0)
    centred_targets = targets - class_shares
    # X(XᵀX + λ)⁻¹Xᵀ = U diag(s / (s + λ)) Uᵀ with U the left singular vectors: from the smaller Gram matrix.
    if d < n:
        eigenvalues, vectors = torch.linalg.eigh(gram(x))
        keep = eigenvalues > eigenvalues.max() * 1e-10
        eigenvalues, vectors = eigenvalues[keep], vectors[:, keep]
        left = (x @ vectors) / eigenvalues.sqrt()
    else:
        eigenvalues, left = torch.linalg.eigh(x @ x.T)
        keep = eigenvalues > eigenvalues.max() * 1e-10
        eigenvalues, left = eigenvalues[keep], left[:, keep]
    projected = left.T @ centred_targets  # [r, C]
    squared_left = left.square()
    scale = float(eigenvalues.mean())
    best: tuple[float, torch.Tensor | None, float] = (math.inf, None, 0.0)
    for alpha in RIDGE_ALPHAS:
        shrink = eigenvalues / (eigenvalues + alpha * scale)
        fitted = left @ (shrink[:, None] * projected)  # centred predictions
        leverage = (squared_left @ shrink + 1.0 / n).clamp_max(1 - 1e-6)
        loo = centred_targets - (centred_targets - fitted) / (1 - leverage)[:, None]
        press = float((centred_targets - loo).double().square().sum())
        if press < best[0]:
            best = (press, _fractional_hits(loo + class_shares, labels), alpha)
    return best[1], best[2]


def _stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> np.ndarray:
    """Fold id of every sample: each class's samples are shuffled (seeded) and dealt round-robin."""
    y = labels.cpu().numpy()
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold_of[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)  # classes continue the deal, so small classes do not all start at fold 0
    return fold_of


def _fit_logistic(x: torch.Tensor, labels: torch.Tensor, num_classes: int, decay: float) -> torch.Tensor:
    """``[D + 1, C]`` weights (bias last) of L2-regularised multinomial logistic regression, full-batch L-BFGS."""
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype, device=x.device)], dim=1)
    weights = torch.zeros(design.shape[1], num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights], lr=1.0, max_iter=100, tolerance_grad=1e-6, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(design @ weights, labels) + decay * weights[:-1].square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return weights.detach()


def _logistic_accuracy(train_x, train_y, test_x, test_y, num_classes: int, decay: float) -> torch.Tensor:
    weights = _fit_logistic(train_x, train_y, num_classes, decay)
    logits = torch.cat([test_x, torch.ones(len(test_x), 1, dtype=test_x.dtype, device=test_x.device)], dim=1) @ weights
    return _fractional_hits(logits, test_y)


def _logistic_cv(features: torch.Tensor, labels: torch.Tensor, num_classes: int, folds: int, seed: int) -> torch.Tensor:
    """Stratified k-fold hits ``[N]``; each training fold picks its decay on a stratified inner fold of itself."""
    x = _standardised(features)
    fold_of = torch.from_numpy(_stratified_folds(labels, folds, seed)).to(labels.device)
    hits = torch.empty(len(labels), dtype=torch.float64, device=x.device)
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        inner_fold = torch.from_numpy(_stratified_folds(labels[train], folds, seed + 1 + fold)).to(labels.device)
        inner_train, inner_test = inner_fold != 0, inner_fold == 0
        xs, ys = x[train], labels[train]
        decay = max(LOGISTIC_DECAYS, key=lambda w: float(_logistic_accuracy(
            xs[inner_train], ys[inner_train], xs[inner_test], ys[inner_test], num_classes, w).mean()))
        hits[test] = _logistic_accuracy(xs, ys, x[test], labels[test], num_classes, decay)
    return hits


def linear_probe_cv_hits(inputs: MetricInputs, *, method: Literal["ridge_loo", "logistic"] = "ridge_loo",
                         folds: int = 5, seed: int = 0) -> torch.Tensor:
    """Per-sample held-out hits ``[N]`` (1, 0, or 1/k for a k-way tie) behind :func:`linear_probe_cv`."""
    if method == "ridge_loo":
        return _ridge_loo(inputs.features, inputs.labels, inputs.num_classes)[0]
    smallest = int(torch.bincount(inputs.labels).min())
    if not 2 <= folds <= smallest:
        raise MetricInputError("linear_probe_cv", f"folds must be between 2 and the smallest class size ({smallest}), "
                               f"got {folds}.", "use fewer folds, or the default method='ridge_loo'.")
    return _logistic_cv(inputs.features, inputs.labels, inputs.num_classes, folds, seed)


@register("linear_probe_cv", consumes="features", min_samples_per_class=2, per_sample=linear_probe_cv_hits,
          paper="hf-tsel training-based proxy: cross-validated linear-probe accuracy (Chaves et al., arXiv "
                "2405.20420, find such plain baselines hard to beat); ridge leave-one-out via the PRESS identity "
                "(Allen, Technometrics 1974)")
def linear_probe_cv(inputs: MetricInputs, *, method: Literal["ridge_loo", "logistic"] = "ridge_loo", folds: int = 5,
                    seed: int = 0) -> float:
    """Cross-validated accuracy of a linear classifier on the standardised features (in [0, 1]).

    ``ridge_loo`` (default): exact leave-one-out accuracy of a ridge classifier on one-hot targets,
    strength from :data:`RIDGE_ALPHAS` by minimum leave-one-out squared error, from one
    eigendecomposition of the smaller Gram matrix (O(N·D·min(N, D))). ``logistic``: stratified
    ``folds``-fold accuracy of multinomial logistic regression (L-BFGS), L2 decay from
    :data:`LOGISTIC_DECAYS` chosen on an inner fold of each training fold; seeded by ``seed``.

    Example:
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1, 2], 30)
        >>> x = rng.normal(size=(90, 8)) + 2 * np.eye(8)[y]
        >>> score("linear_probe_cv", x, y) - score("linear_probe_cv", x, rng.permutation(y)) > 0.3
        True
    """
    return float(linear_probe_cv_hits(inputs, method=method, folds=folds, seed=seed).mean())


def _neighbour_votes(queries: torch.Tensor, query_rows: torch.Tensor, reference: torch.Tensor,
                     labels: torch.Tensor, num_classes: int, k: int, distance: str, temperature: float) -> torch.Tensor:
    """``[Q, C]`` votes of each query's ``k`` nearest reference rows (the query itself excluded)."""
    if distance == "cosine":
        closeness = queries @ reference.T
    else:  # squared Euclidean distance, negated; the |q|² term is constant per row and dropped
        closeness = 2 * queries @ reference.T - reference.square().sum(dim=1)[None, :]
    closeness[torch.arange(len(queries), device=queries.device), query_rows] = -math.inf
    nearest, index = closeness.topk(k, dim=1)
    weights = (nearest / temperature).exp() if distance == "cosine" else torch.ones_like(nearest)
    votes = torch.zeros(len(queries), num_classes, dtype=weights.dtype, device=weights.device)
    return votes.scatter_add_(1, labels[index], weights)


def knn_hits(inputs: MetricInputs, *, k: int = 20, distance: Literal["cosine", "euclidean"] = "cosine",
             temperature: float = 0.07, max_queries: int | None = 10_000, seed: int = 0) -> torch.Tensor:
    """Per-sample leave-one-out hits ``[N]`` behind :func:`knn` (NaN for samples not drawn as queries)."""
    n = len(inputs.labels)
    if k < 1 or not temperature > 0 or (max_queries is not None and max_queries < 1):
        raise MetricInputError("knn", f"k and max_queries must be >= 1 and temperature > 0, got k={k}, "
                               f"max_queries={max_queries}, temperature={temperature}.",
                               "use the defaults (k=20, temperature=0.07, max_queries=10000).")
    reference = inputs.features
    if distance == "cosine":
        reference = torch.nn.functional.normalize(reference, dim=1)
    query_rows = torch.arange(n, device=reference.device)
    if max_queries is not None and n > max_queries:
        chosen = np.sort(np.random.default_rng(seed).choice(n, size=max_queries, replace=False))
        query_rows = torch.from_numpy(chosen).to(reference.device)
    k = min(k, n - 1)
    block = max(1, _KNN_BLOCK_ELEMENTS // n)
    hits = torch.full((n,), math.nan, dtype=torch.float64, device=reference.device)
    for start in range(0, len(query_rows), block):
        rows = query_rows[start:start + block]
        votes = _neighbour_votes(reference[rows], rows, reference, inputs.labels, inputs.num_classes, k, distance,
                                 temperature)
        hits[rows] = _fractional_hits(votes, inputs.labels[rows])
    return hits


@register("knn", consumes="features", dtype=torch.float32, per_sample=knn_hits,
          paper="Sorkhei et al., k-NN as a Simple and Effective Estimator of Transferability, arXiv 2503.18528 "
                "(weighted k-NN of Caron et al., DINO, ICCV 2021)")
def knn(inputs: MetricInputs, *, k: int = 20, distance: Literal["cosine", "euclidean"] = "cosine",
        temperature: float = 0.07, max_queries: int | None = 10_000, seed: int = 0) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of the features (in [0, 1]).

    Every sample is classified by the votes of its ``k`` nearest other samples: cosine similarity
    with weights ``exp(s / temperature)``, or Euclidean distance with one vote each. The similarity
    matrix is built in row blocks, so memory stays O(block x N). Above ``max_queries`` samples the
    accuracy is estimated on a seeded random subset of that many query samples, each still searched
    against all N (standard error below 0.005 at 10,000 queries); ``max_queries=None`` queries all.

    Example (two well-separated classes: every neighbourhood is pure):
        >>> import numpy as np
        >>> from hf_tsel.metrics import score
        >>> x = np.concatenate([np.zeros((25, 4)), np.ones((25, 4))]) + np.linspace(0, 0.1, 50)[:, None]
        >>> score("knn", x, np.repeat([0, 1], 25), k=5, distance="euclidean")
        1.0
    """
    hits = knn_hits(inputs, k=k, distance=distance, temperature=temperature, max_queries=max_queries, seed=seed)
    return float(hits.nanmean())
