"""PARC: Pairwise Annotation Representation Comparison (Bolya et al., NeurIPS'21)."""

from __future__ import annotations

import numpy as np
import torch

from ..sampling import shuffled_by_class
from ._common import class_counts, top_principal_components
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["parc"]

SUBSAMPLE_SEED = 1919  # PARC's own PCA seed, reused for the deterministic subsample
_ROW_BLOCK = 512


def stratified_subsample(labels: torch.Tensor, num_classes: int, max_samples: int,
                         seed: int = SUBSAMPLE_SEED) -> torch.Tensor:
    """Sorted indices of a deterministic, class-stratified subsample of about ``max_samples`` rows.

    Each class keeps ``round(n_c * max_samples / N)`` samples, but at least ``min(n_c, 2)``, drawn
    (:func:`hf_tsel.sampling.shuffled_by_class`) by a CPU ``torch.Generator`` seeded with ``seed`` so
    the result is the same on every device.
    """
    counts = class_counts(labels, num_classes).cpu()
    quota = torch.maximum(torch.round(counts * (max_samples / len(labels))).long(), counts.clamp_max(2)).tolist()
    generator = torch.Generator().manual_seed(seed)
    members = shuffled_by_class(labels.cpu(), range(num_classes), lambda n: torch.randperm(n, generator=generator))
    keep = torch.cat([rows[:share] for rows, share in zip(members, quota)])
    return torch.sort(keep).values.to(labels.device)


def _rdm_pairs(features: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``1 - corr(x_i, x_j)`` over all pairs ``i < j``, and its entries for same-class pairs only.

    Built in blocks of rows, so the ``N x N`` matrix never exists; the pair order is irrelevant to
    the rank statistics that follow.
    """
    centred = features - features.mean(dim=1, keepdim=True)
    norms = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    if not bool((norms > 0).all()):
        raise MetricInputError("parc", f"{int((norms == 0).sum())} samples have constant reduced features, so their "
                               "correlation with other samples (PARC's dissimilarity) is undefined.",
                               "check the features (e.g. constant or all-zero rows) or drop those samples.")
    rows = centred / norms
    n = len(rows)
    label_array = labels.cpu().numpy()
    # Later members of each sample's class: the same-class partners j > i.
    by_class = np.argsort(label_array, kind="stable")
    class_lists = np.split(by_class, np.cumsum(np.bincount(label_array))[:-1])
    later = [None] * n
    for members in class_lists:
        for position, index in enumerate(members):
            later[index] = members[position + 1:]
    values = np.empty(n * (n - 1) // 2)
    same_values = np.empty(sum(len(m) * (len(m) - 1) // 2 for m in class_lists))
    offset = same_offset = 0
    for start in range(0, n - 1, _ROW_BLOCK):
        stop = min(start + _ROW_BLOCK, n - 1)
        block = (rows[start:stop] @ rows.T).double().cpu().numpy()
        np.clip(block, -1, 1, out=block)  # as np.corrcoef
        np.subtract(1, block, out=block)
        for row, i in zip(block, range(start, stop)):
            values[offset:offset + n - 1 - i] = row[i + 1:]
            offset += n - 1 - i
            partners = later[i]
            same_values[same_offset:same_offset + len(partners)] = row[partners]
            same_offset += len(partners)
    return values, same_values


def _spearman_with_binary(values: np.ndarray, same_values: np.ndarray) -> float:
    """Spearman correlation of the pair ``values`` with the two-valued label RDM (0 within a class, 1 + 1/(C-1) across).

    With average ranks for ties, Spearman against a binary variable is the point-biserial Pearson
    correlation of the ranks, so only the rank sum of the same-class pairs and the tie groups of
    ``values`` are needed: one sort instead of ranking two ``N(N-1)/2`` vectors. ``values`` is
    sorted in place.
    """
    n_pairs, n_same = len(values), len(same_values)
    values.sort()
    # Average rank (1-based) of v: (#values < v) + (#values == v + 1) / 2.
    rank_sum = (np.searchsorted(values, same_values, "left").sum()
                + np.searchsorted(values, same_values, "right").sum() + n_same) / 2
    tied = np.flatnonzero(values[1:] == values[:-1])
    tie_term = 0.0
    if len(tied):
        group_starts = np.flatnonzero(np.diff(tied) != 1) + 1
        sizes = np.diff(np.concatenate([[0], group_starts, [len(tied)]])) + 1.0
        tie_term = float(np.sum(sizes**3 - sizes))
    mean_rank = (n_pairs + 1) / 2
    rank_variance = (n_pairs**2 - 1) / 12 - tie_term / (12 * n_pairs)
    fraction_same = n_same / n_pairs
    covariance = rank_sum / n_pairs - mean_rank * fraction_same
    rho_same = covariance / np.sqrt(rank_variance * fraction_same * (1 - fraction_same))
    return -rho_same  # the label RDM is low for same-class pairs


@register("parc", consumes="features", paper="Bolya et al., Scalable Diverse Model Selection for Accessible "
          "Transfer Learning, NeurIPS 2021",
          reference="dbolya/parc@ddfca43a84d35328897d107d6f86e860b11801ce:methods.py::PARC")
def parc(inputs: MetricInputs, *, pca_dims: int = 32, max_samples: int = 10_000) -> float:
    """Spearman correlation (x100) of the feature and label dissimilarity matrices (PARC, Bolya et al. NeurIPS'21).

    Features go through PCA to ``pca_dims`` (32 as the reference demo) and per-dimension
    standardisation; ``RDM_F = 1 - corr(x_i, x_j)`` over sample pairs, ``RDM_Y = 1 - corr(onehot_i,
    onehot_j)`` (``0`` within a class, ``1 + 1/(C-1)`` across), and PARC = 100 * Spearman of their
    strict upper triangles; higher is better.

    Deviations from the reference ``value``: (1) the reference reduces with a randomized PCA (seed
    1919, one power iteration); this uses exact PCA (signs as scikit-learn >= 1.5; PARC is
    sign-sensitive). (2) The reference's label RDM ``1 - np.corrcoef(one_hot)`` is two-valued only
    in exact arithmetic: its off-class entries differ in the last bit depending on BLAS summation
    order, Spearman ranks them as distinct values, and the score moves by up to ~10 % between machines
    or row orders. Here the label RDM is exactly two-valued, so this matches the golden
    ``value_exact_pca_exact_label_ties`` to ~1e-12. (3) The ``N x N`` matrices grow quadratically: above
    ``max_samples`` rows a class-stratified subsample of about ``max_samples`` rows is scored,
    drawn deterministically (:func:`stratified_subsample`, seed 1919). At the default 10 000 the pair
    array takes 400 MB (peak about 1 GB with the PCA); SFDA-family copies of PARC subsample at 15 000.

    Args:
        pca_dims: principal components kept before the RDMs.
        max_samples: largest number of rows scored without subsampling.
    """
    if int(pca_dims) < 1:
        raise MetricInputError("parc", f"pca_dims must be a positive integer, got {pca_dims}.",
                               "pass e.g. pca_dims=32.")
    if int(max_samples) < 2 * inputs.num_classes:
        raise MetricInputError("parc", f"max_samples={max_samples} leaves fewer than 2 samples per class "
                               f"for {inputs.num_classes} classes.", f"pass max_samples >= {2 * inputs.num_classes}.")
    features, labels = inputs.features, inputs.labels
    if len(labels) > max_samples:
        keep = stratified_subsample(labels, inputs.num_classes, int(max_samples))
        features, labels = features[keep], labels[keep]
    reduced, _ = top_principal_components(features, int(pca_dims))
    std = reduced.std(dim=0, correction=0)
    # As StandardScaler: centre, and leave constant dimensions unscaled.
    standardised = (reduced - reduced.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    return 100.0 * float(_spearman_with_binary(*_rdm_pairs(standardised, labels)))
