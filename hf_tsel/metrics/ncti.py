"""NCTI: neural-collapse-based transferability index (Wang et al., ICCV'23).

Deviations from the reference: PCA is exact (the reference's ``PCA(64)`` with ``svd_solver='auto'``
is randomized for many shapes and then depends on the global NumPy seed, ~1e-3 relative). For
D < 64 (or N < 64) the reference's PCA raises; here PCA keeps ``min(64, N, D)`` components.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._common import class_counts, class_means, minmax, top_principal_components, within_class_covariance
from ._lda import SHRINKAGE_FLOOR, discriminant_directions, lda_posteriors, shrink, true_class_probability
from ._registry import register
from ._validation import MetricInputs

__all__ = ["ncti", "ncti_seli", "ncti_ncc", "ncti_vc", "ncti_components"]

_PAPER = ("Wang et al., How Far Pre-trained Models Are from Neural Collapse on the Target Dataset Informs their "
          "Transferability, ICCV 2023")
_REFERENCE = "BUserName/NCTI@b18d39514a3f2a7a949500b467a38b93de1428e4:metrics.py::NCTI_Score"
PCA_DIMS = 64
_SHRINKAGE_COMPONENTS = 32


class NCTIComponents(NamedTuple):
    """The three per-model terms of NCTI, in the reference's own directions."""

    seli: float  # nuclear norm of the centred LDA projection; higher is better
    ncc: float  # mean LDA p(y|x); higher is better
    vc: float  # log of the summed per-class nuclear norms of the posteriors; lower is better


def _discriminant_axes(covariance: torch.Tensor, between: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[d, k]`` LDA axes: leading generalised eigenvectors of ``(between, covariance)``, k <= min(C-1, d).

    Any basis of the same subspace that is orthonormal in the ``covariance`` metric gives the same
    nuclear norm, so whitening plus an eigendecomposition is enough. Directions of (numerically)
    zero within-class variance are dropped, as scikit-learn's SVD solver does (few samples per class).
    """
    values, vectors = torch.linalg.eigh(covariance)
    kept = values > values.max() * len(values) * torch.finfo(values.dtype).eps
    whitening = vectors[:, kept] / values[kept].sqrt()
    whitened_between = whitening.T @ between @ whitening
    _, axes = torch.linalg.eigh((whitened_between + whitened_between.T) / 2)
    k = min(num_classes - 1, axes.shape[1])
    return whitening @ axes[:, -k:]


def ncti_components(inputs: MetricInputs) -> NCTIComponents:
    """S_seli, S_ncc and S_vc of one model as the reference ``NCTI_Score`` computes them.

    PCA to 64 dimensions; shrinkage ``s = max(exp(-sum of the 32 largest explained variances), 1e-10)``;
    if ``s`` is at the floor, scikit-learn's ``LinearDiscriminantAnalysis(solver='svd')`` (within-class
    covariance ``X_c^T X_c / N``, no shrinkage: scikit-learn 1.9, which made the golden values; older
    releases divided by ``N - C``), else ``solver='eigen'`` with shrinkage ``s`` (prior-weighted
    population class covariances, shrunk). Both are reproduced in closed form: posteriors by a
    Cholesky solve, the projection by whitening. See the module docstring for deviations.
    """
    features, labels, num_classes = inputs.features, inputs.labels, inputs.num_classes
    n, dim = features.shape
    reduced, variances = top_principal_components(features, PCA_DIMS)
    shrinkage = max(math.exp(-float(variances[:_SHRINKAGE_COMPONENTS].sum())), SHRINKAGE_FLOOR)
    means = class_means(reduced, labels, num_classes)
    priors = class_counts(labels, num_classes).to(reduced.dtype) / n
    within = within_class_covariance(reduced, labels, num_classes)
    centred = reduced - reduced.mean(dim=0)
    if shrinkage == SHRINKAGE_FLOOR:
        covariance = within
        mean_offsets = means - priors @ means
        between = mean_offsets.T @ (priors[:, None] * mean_offsets)
    else:
        covariance = shrink(within, shrinkage)
        between = shrink(centred.T @ centred / n, shrinkage) - covariance
    posteriors = lda_posteriors(reduced, means, priors, discriminant_directions(means, covariance))
    projection = centred @ _discriminant_axes(covariance, between, num_classes)
    seli = float(torch.linalg.matrix_norm(projection, ord="nuc"))
    per_class_nuclear = sum(float(torch.linalg.matrix_norm(posteriors[labels == c], ord="nuc"))
                            for c in range(num_classes))
    return NCTIComponents(seli=seli, ncc=true_class_probability(posteriors, labels), vc=math.log(per_class_nuclear))


@register("ncti_seli", consumes="features", paper=_PAPER, reference=_REFERENCE)
def ncti_seli(inputs: MetricInputs) -> float:
    """NCTI's S_seli: nuclear norm of the centred LDA projection of the PCA-64 features; higher is better."""
    return ncti_components(inputs).seli


@register("ncti_ncc", consumes="features", paper=_PAPER, reference=_REFERENCE)
def ncti_ncc(inputs: MetricInputs) -> float:
    """NCTI's S_ncc: mean LDA p(y|x) on the PCA-64 features (nearest-centre classifiability); higher is better."""
    return ncti_components(inputs).ncc


@register("ncti_vc", consumes="features", paper=_PAPER, reference=_REFERENCE, negated=True)
def ncti_vc(inputs: MetricInputs) -> float:
    """NCTI's S_vc: log of the summed nuclear norms of each class's posterior matrix; lower is better (negated)."""
    return ncti_components(inputs).vc


@register("ncti", consumes="model_set", paper=_PAPER,
          reference=f"{_REFERENCE} + evaluate_metric_group1_cpu.py (zoo min-max combination)")
def ncti(inputs_by_model: dict[str, MetricInputs]) -> dict[str, float]:
    """NCTI over a model set: ``minmax(S_ncc) + minmax(S_seli) - minmax(S_vc)`` (Wang et al. ICCV'23); higher is better.

    Each term comes from :func:`ncti_components` and is min-max scaled over the given models, as the
    reference evaluation script does, so scores are only comparable within one zoo (range [-1, 2]).
    """
    models = list(inputs_by_model)
    parts = [ncti_components(inputs_by_model[m]) for m in models]
    seli, ncc, vc = (torch.tensor(values, dtype=torch.float64) for values in zip(*parts))
    combined = minmax(ncc) + minmax(seli) - minmax(vc)
    return dict(zip(models, combined.tolist()))

