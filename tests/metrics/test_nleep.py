"""N-LEEP's fast Gaussian-mixture fit: the sparse EM against scikit-learn's dense EM, and the bounded k-means.

The golden-value checks (within the widened seed range, zoo ranking) are in test_golden_classic_a.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_tsel.metrics import nleep as nleep_module
from hf_tsel.metrics import score


def _golden(golden_case, case: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = golden_case(case)
    return arrays["features"].astype(np.float64), arrays["labels"]


@pytest.mark.parametrize("case", ["overlapping", "imbalanced", "zoo_m2", "zoo_m4"])
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_em_gives_the_dense_em_score_on_golden_data(case, seed, golden_case):
    # Measured: at most 1.4e-14 apart over the 9 golden cases x seeds 0-2, and 1e-14 at N = 50000
    # (docs/methods.md); 1e-9 leaves room for other BLAS summation orders.
    features, labels = _golden(golden_case, case)
    dense = score("nleep", features, labels, seed=seed, em="dense")
    assert score("nleep", features, labels, seed=seed, em="sparse") == pytest.approx(dense, abs=1e-9)


def test_sparse_em_without_periodic_screens_still_matches(golden_case, monkeypatch):
    """The final screen alone (no screen between) must not change the score beyond rounding either."""
    features, labels = _golden(golden_case, "zoo_m1")
    dense = score("nleep", features, labels, seed=2, em="dense")
    monkeypatch.setattr(nleep_module, "_SCREEN_EVERY", 1000)
    assert score("nleep", features, labels, seed=2) == pytest.approx(dense, abs=1e-9)


def _plain_lloyd(points: torch.Tensor, n_clusters: int, seed: int) -> torch.Tensor:
    """Lloyd's algorithm with a full float64 assignment of every point at every iteration (the reference)."""
    centres = nleep_module._kmeans_plusplus(points, n_clusters, torch.Generator().manual_seed(seed))
    tol = 1e-4 * float(points.var(dim=0, unbiased=False).mean())

    def nearest(centres: torch.Tensor) -> torch.Tensor:
        return torch.addmm((centres * centres).sum(1)[None], points, centres.T, alpha=-2).argmin(1)

    labels = torch.full((len(points),), -1)
    for _ in range(300):
        new_labels = nearest(centres)
        if bool((new_labels == labels).all()):
            break
        labels = new_labels
        counts = torch.bincount(labels, minlength=n_clusters)
        new_centres = torch.zeros_like(centres).index_add_(0, labels, points) / counts.clamp_min(1)[:, None]
        empty = torch.nonzero(counts == 0)[:, 0]
        if len(empty):
            new_centres[empty] = points[torch.topk(((points - centres[labels]) ** 2).sum(1), len(empty)).indices]
        shift = float(((new_centres - centres) ** 2).sum())
        centres = new_centres
        if shift <= tol:
            return nearest(centres)
    return labels


def _lattice_far_from_the_origin() -> torch.Tensor:
    """Integer points (many exact ties) at coordinates ~1e3: float32 cannot separate their distances."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    return torch.cat([grid, grid[::3]]).double() + 1000.0


@pytest.mark.parametrize("points, n_clusters", [
    (lambda g: nleep_module._pca_by_variance(torch.from_numpy(_golden(g, "overlapping")[0]), 0.8), 50),
    (lambda g: torch.from_numpy(_golden(g, "imbalanced")[0]), 40),
    (lambda g: _lattice_far_from_the_origin(), 7),
])
@pytest.mark.parametrize("seed", [0, 3])
def test_bounded_kmeans_gives_the_labels_of_plain_lloyd(points, n_clusters, seed, golden_case):
    points = points(golden_case)
    ours = nleep_module.kmeans(points, n_clusters, torch.Generator().manual_seed(seed))
    assert torch.equal(ours, _plain_lloyd(points, n_clusters, seed))


def test_unknown_em_variant_is_refused():
    with pytest.raises(Exception, match="em must be 'sparse' or 'dense'"):
        nleep_module.fit_gaussian_mixture(torch.randn(20, 2).double(), 2, torch.Generator(), em="full")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sparse_em_on_cuda_matches_the_cpu(golden_case):
    features, labels = _golden(golden_case, "zoo_m3")
    cpu = score("nleep", features, labels, seed=0)
    assert score("nleep", features, labels, seed=0, device="cuda") == pytest.approx(cpu, abs=1e-9)
