"""GBC: Gaussian Bhattacharyya Coefficient (Pándy et al., CVPR'22)."""

from __future__ import annotations

from typing import Literal

import torch

from ._common import class_counts, class_means, top_principal_components
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["gbc"]

VARIANCE_FLOOR = 1e-4
# Bounds the [rows, C, d] block of the diagonal variant to ~32 MB of float64.
_PAIR_BLOCK_ELEMENTS = 4_000_000


def _class_variances(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                     means: torch.Tensor) -> torch.Tensor:
    """``[C, d]`` per-dimension population variances of each class, floored at 1e-4 as the reference."""
    squares = torch.zeros_like(means).index_add_(0, labels, (features - means[labels]) ** 2)
    variances = squares / class_counts(labels, num_classes).to(features.dtype)[:, None]
    return variances.clamp_min(VARIANCE_FLOOR)


def _bhattacharyya_spherical(means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """``[C, C]`` distances between spherical Gaussians (one variance per class, the mean over dimensions)."""
    sigma = variances.mean(dim=1)
    avg = (sigma[:, None] + sigma[None, :]) / 2
    squared_gaps = torch.cdist(means, means, compute_mode="donot_use_mm_for_euclid_dist").square()
    # The reference's log terms are of scalars here, so they are not multiplied by the dimension.
    return squared_gaps / avg / 8 + 0.5 * (avg.log() - 0.5 * sigma.log()[:, None] - 0.5 * sigma.log()[None, :])


def _bhattacharyya_diagonal(means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """``[C, C]`` distances between diagonal Gaussians, computed in blocks of rows to bound memory."""
    num_classes, dim = means.shape
    log_var = variances.log().sum(dim=1)
    rows = max(1, _PAIR_BLOCK_ELEMENTS // (num_classes * dim))
    blocks = []
    for start in range(0, num_classes, rows):
        stop = min(start + rows, num_classes)
        avg = (variances[start:stop, None, :] + variances[None, :, :]) / 2
        gaps = (means[start:stop, None, :] - means[None, :, :]).square()
        blocks.append((gaps / avg).sum(dim=2) / 8
                      + 0.5 * (avg.log().sum(dim=2) - 0.5 * log_var[start:stop, None] - 0.5 * log_var[None, :]))
    return torch.cat(blocks)


@register("gbc", consumes="features", paper="Pándy et al., Transferability Estimation using Bhattacharyya Class "
          "Separability, CVPR 2022",
          reference="google-research/google-research@1d4d2f1aa6f2883a790d2ae46a6ee8ab150d8f31:"
                    "stable_transfer/transferability/gbc.py::get_gbc_score")
def gbc(inputs: MetricInputs, *, gaussian_type: Literal["spherical", "diagonal"] = "spherical",
        pca_dims: int = 64) -> float:
    """Gaussian Bhattacharyya Coefficient: minus the summed class-pair overlaps (GBC, Pándy et al. CVPR'22).

    Features are reduced by PCA to ``pca_dims`` (64, the reference configuration); each class is a
    Gaussian with its mean and per-dimension population variances (floored at 1e-4), spherical
    (one variance, their mean) or diagonal. With ``s = (s_1 + s_2) / 2`` the Bhattacharyya distance is
    ``D_B = 1/8 sum (mu_1 - mu_2)^2 / s + 1/2 (sum log s - 1/2 sum log s_1 - 1/2 sum log s_2)`` and
    ``GBC = -sum_{c != c'} exp(-D_B(c, c'))`` over ordered pairs, in ``[-C(C-1), 0]``; higher is better.

    Deviations: when ``D`` (or ``N``) is below ``pca_dims`` the reference pipeline's PCA raises; here
    PCA keeps ``min(pca_dims, N, D)`` components (for full-rank features a centring plus rotation,
    as the golden values use). The reference runs in float32 TensorFlow; this runs in the input
    dtype (float64 by default), so values agree to ~1e-4 relative.

    Args:
        gaussian_type: ``"spherical"`` (default, as the paper's experiments) or ``"diagonal"``.
        pca_dims: number of principal components kept before fitting the Gaussians.
    """
    if gaussian_type not in ("spherical", "diagonal"):
        raise MetricInputError("gbc", f"unknown gaussian_type {gaussian_type!r}.",
                               "use gaussian_type='spherical' (default) or 'diagonal'.")
    if int(pca_dims) < 1:
        raise MetricInputError("gbc", f"pca_dims must be a positive integer, got {pca_dims}.", "pass e.g. pca_dims=64.")
    features, _ = top_principal_components(inputs.features, int(pca_dims))
    labels, num_classes = inputs.labels, inputs.num_classes
    means = class_means(features, labels, num_classes)
    variances = _class_variances(features, labels, num_classes, means)
    distance = (_bhattacharyya_spherical if gaussian_type == "spherical" else _bhattacharyya_diagonal)(means, variances)
    self_pairs = torch.eye(num_classes, dtype=torch.bool, device=distance.device)
    return -float(torch.exp(-distance).masked_fill(self_pairs, 0).sum())
