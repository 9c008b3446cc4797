"""H-score (Bao et al., ICIP 2019) and its Ledoit–Wolf regularised variant (Ibrahim et al., 2022)."""

from __future__ import annotations

import torch

from ._common import class_counts, class_means, covariance
from ._registry import register
from ._validation import MetricInputs

__all__ = ["hscore", "reg_hscore", "ledoit_wolf_covariance"]

# numpy.linalg.pinv's cut-off used by the reference (tllib): singular values below rcond * largest are dropped.
_PINV_RCOND = 1e-15


def _trace_pinv_between(cov_features: torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                        num_classes: int) -> torch.Tensor:
    """``tr(pinv(cov_features) · cov(E[f|y]))`` with ``cov(E[f|y])`` as ``np.cov`` (ddof 1) of the class means.

    ``cov(E[f|y]) = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ / (N − 1)``, so the trace is a weighted sum of the
    squared pseudo-inverse norms of the centred class means, computed in the eigenbasis of the
    (symmetric) covariance instead of forming the pseudo-inverse.
    """
    eigenvalues, vectors = torch.linalg.eigh(cov_features)
    keep = eigenvalues.abs() > _PINV_RCOND * eigenvalues.abs().max()
    offsets = class_means(features, labels, num_classes) - features.mean(dim=0)
    weights = class_counts(labels, num_classes).to(features.dtype) / (len(features) - 1)
    coords = offsets @ vectors[:, keep]
    return (weights[:, None] * coords**2 / eigenvalues[keep]).sum()


@register("hscore", consumes="features", aliases=("h_score",),
          paper="Bao et al., An Information-Theoretic Approach to Transferability in Task Transfer Learning, ICIP 2019",
          reference="thuml/Transfer-Learning-Library@c4aa59e:tllib/ranking/hscore.py::h_score")
def hscore(inputs: MetricInputs) -> float:
    """H-score: tr(cov(f)⁺ cov(E[f|y])), how much of the feature variance the class means explain.

    Paper Eq. 3 (H(f) = tr(cov(f)⁻¹ cov(E_{P_X|Y}[f(X)|Y]))), computed as tllib does: sample
    covariances with ddof 1 and the Moore–Penrose pseudo-inverse with cut-off 1e-15 (numpy's
    ``pinv`` rcond). With N ≤ D the covariance is singular and the score equals exactly C − 1, as
    in the reference; prefer ``reg_hscore`` there.
    """
    features = inputs.features
    return float(_trace_pinv_between(covariance(features), features, inputs.labels, inputs.num_classes))


def ledoit_wolf_covariance(features: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Ledoit–Wolf shrunk covariance ``(1−a)·S + a·(tr S / D)·I`` and its shrinkage ``a``, as scikit-learn.

    ``S`` is the population covariance (ddof 0) of the centred features; ``a`` is the closed form of
    Ledoit & Wolf (2004) as ``sklearn.covariance.ledoit_wolf_shrinkage`` evaluates it.
    """
    n_samples, dim = features.shape
    centred = features - features.mean(dim=0)
    emp_cov = centred.T @ centred / n_samples
    mu = torch.trace(emp_cov) / dim
    frob_sq = (emp_cov**2).sum()
    # Σ_i ‖x_i‖⁴ is the sum of all entries of (X∘X)ᵀ(X∘X), which sklearn accumulates blockwise.
    fourth_moment = ((centred**2).sum(dim=1) ** 2).sum() / n_samples
    beta = (fourth_moment - frob_sq) / (dim * n_samples)
    delta = (frob_sq - 2 * mu * torch.trace(emp_cov) + dim * mu**2) / dim
    beta = torch.minimum(beta, delta)
    shrinkage = 0.0 if float(beta) == 0 else float(beta / delta)
    shrunk = (1 - shrinkage) * emp_cov
    shrunk.diagonal().add_(shrinkage * mu)
    return shrunk, shrinkage


@register("reg_hscore", consumes="features", aliases=("regularized_h_score",),
          paper="Ibrahim et al., Newer is not always better: Rethinking transferability metrics, their "
                "peculiarities, stability and performance, ECML-PKDD 2022 (NeurIPS 2021 DistShift workshop)",
          reference="thuml/Transfer-Learning-Library@c4aa59e:tllib/ranking/hscore.py::regularized_h_score")
def reg_hscore(inputs: MetricInputs) -> float:
    """Regularised H-score: tr(cov_a(f)⁺ (1−a) cov(E[f|y])) with Ledoit–Wolf shrinkage a.

    Ibrahim et al., Eq. 4: the feature covariance is replaced by the Ledoit–Wolf estimate, which
    stays well conditioned when N ≲ D (where the plain H-score saturates at C − 1).
    """
    features = inputs.features - inputs.features.mean(dim=0)
    shrunk, shrinkage = ledoit_wolf_covariance(features)
    between = _trace_pinv_between(shrunk, features, inputs.labels, inputs.num_classes)
    return float((1 - shrinkage) * between)
