"""Linear-discriminant primitives shared by SFDA, ETran's LDA score and NCTI.

All three references fit a (shrinkage) LDA and read its posteriors ``p(y|x)``. Their Fisher
projections keep every eigenvector, so the posteriors are those of plain LDA with a (possibly
shrunk) within-class covariance ``S``: logits ``x^T S^-1 mu_c - 1/2 mu_c^T S^-1 mu_c + log pi_c``
(ETran's orthonormal eigenvectors make ``S = I``). Solving ``S A = mu^T`` (Cholesky) gives the same
numbers as the references' generalised ``eigh`` at a fraction of the cost.
"""

from __future__ import annotations

import math

import torch

from ._common import class_counts, class_means, within_class_covariance
from ._validation import MetricInputError

__all__ = ["shrink", "largest_eigenvalue", "adaptive_shrinkage", "discriminant_directions", "lda_posteriors",
           "check_within_class_variance", "fit_lda_posteriors", "true_class_probability"]

SHRINKAGE_FLOOR = 1e-10


def shrink(covariance: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """``(1 - s) * S + s * (tr(S) / D) * I``, the shrinkage of scikit-learn's LDA (and of SFDA's ``_cov``)."""
    dim = covariance.shape[0]
    shrunk = (1.0 - shrinkage) * covariance
    shrunk.diagonal().add_(shrinkage * covariance.trace() / dim)
    return shrunk


def largest_eigenvalue(matrix: torch.Tensor, iterations: int = 3) -> float:
    """Largest eigenvalue estimate by ``iterations`` double power steps started at the row sums.

    This reproduces SFDA's ``utils.iterative_A`` exactly (a Rayleigh-like quotient ``x^T A y`` of the
    last two iterates), because its shrinkage depends on this estimate, not on the exact eigenvalue.
    Where an iterate vanishes (the reference returns NaN) the exact eigenvalue is used instead.
    """
    x = matrix.sum(dim=1)
    for _ in range(iterations):
        step = matrix @ x
        y = step / torch.linalg.vector_norm(step)
        step = matrix @ y
        x = step / torch.linalg.vector_norm(step)
    estimate = float(x @ (matrix @ y))
    if math.isnan(estimate):  # an iterate hit the null space (e.g. zero row sums): the reference gives NaN
        return float(torch.linalg.eigvalsh(matrix)[-1])
    return estimate


def adaptive_shrinkage(within_covariance: torch.Tensor) -> float:
    """SFDA's data-driven shrinkage ``max(exp(-5 * lambda_max(S_w)), 1e-10)``, as coded in the reference."""
    return max(math.exp(-5.0 * largest_eigenvalue(within_covariance)), SHRINKAGE_FLOOR)


def discriminant_directions(means: torch.Tensor, covariance: torch.Tensor) -> torch.Tensor:
    """``[C, D]`` rows ``S^-1 mu_c``: Cholesky solve, with a pseudo-inverse if ``S`` is numerically singular."""
    factor, info = torch.linalg.cholesky_ex(covariance)
    if int(info) == 0:
        return torch.cholesky_solve(means.T, factor).T
    return (torch.linalg.pinv(covariance, hermitian=True) @ means.T).T


def lda_posteriors(features: torch.Tensor, means: torch.Tensor, priors: torch.Tensor,
                   directions: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` softmax of the linear discriminants ``x . a_c - 1/2 mu_c . a_c + log pi_c`` (``a_c`` = directions)."""
    intercepts = -0.5 * (means * directions).sum(dim=1) + priors.log()
    return torch.softmax(features @ directions.T + intercepts, dim=1)


def check_within_class_variance(metric: str, within_covariance: torch.Tensor) -> None:
    """Raise a clear error when no class varies at all: every discriminant would be undefined."""
    if not float(within_covariance.trace()) > 0:
        raise MetricInputError(metric, "the features do not vary within any class (e.g. constant features), "
                               "so the discriminant analysis is undefined.",
                               "check the feature extraction; features must differ between samples.")


def fit_lda_posteriors(metric: str, features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                       shrinkage: float | None = None) -> tuple[torch.Tensor, float]:
    """Posteriors of a shrinkage LDA fitted on ``features`` as SFDA's ``SFDA.fit`` does.

    ``S_w`` is the prior-weighted sum of population class covariances; ``shrinkage=None`` picks it
    with :func:`adaptive_shrinkage`. Returns ``(posteriors [N, C], shrinkage used)``; ``metric``
    names the caller in errors.
    """
    means = class_means(features, labels, num_classes)
    priors = class_counts(labels, num_classes).to(features.dtype) / len(labels)
    within = within_class_covariance(features, labels, num_classes)
    check_within_class_variance(metric, within)
    if shrinkage is None:
        shrinkage = adaptive_shrinkage(within)
    directions = discriminant_directions(means, shrink(within, shrinkage))
    return lda_posteriors(features, means, priors, directions), shrinkage


def true_class_probability(posteriors: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean ``p(y_i | x_i)`` over samples (SFDA/ETran/NCTI use it without the log)."""
    return float(posteriors.gather(1, labels[:, None]).mean())
