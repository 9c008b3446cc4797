"""SFDA: Self-challenging Fisher Discriminant Analysis (Shao et al., ECCV'22)."""

from __future__ import annotations

import torch

from ._common import class_means
from ._lda import fit_lda_posteriors, true_class_probability
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["sfda"]


def _confmix(features: torch.Tensor, labels: torch.Tensor, num_classes: int, posteriors: torch.Tensor) -> torch.Tensor:
    """ConfMix: pull each sample towards the other classes' mean, the more the less confidently it is classified.

    ``x <- w x + (1 - w) mean_{c' != y} mu_c'`` with ``w`` the softmax-softened ``p(y|x)``. Returns a new
    tensor: the reference overwrites its input here.
    """
    means = class_means(features, labels, num_classes)
    other_means = (means.sum(dim=0) - means) / (num_classes - 1)
    # The reference applies a softmax to the probabilities themselves, which keeps w in a narrow band.
    weight = torch.softmax(posteriors, dim=1).gather(1, labels[:, None])
    return weight * features + (1 - weight) * other_means[labels]


@register("sfda", consumes="features", paper="Shao et al., Not All Models Are Equal: Predicting Model Transferability "
          "in a Self-challenging Fisher Space, ECCV 2022",
          reference="TencentARC/SFDA@3b7edf76bd682acb1eba4f4c5eb7ea7f3f7f6c59:metrics.py::SFDA_Score")
def sfda(inputs: MetricInputs, *, shrinkage: float | None = None) -> float:
    """Mean p(y|x) of a shrinkage-LDA refitted after ConfMix (SFDA, Shao et al. ECCV'22); higher is better.

    Follows the reference ``SFDA_Score``: (1) shrinkage LDA with ``S_w`` shrunk by
    ``max(exp(-5 lambda_max(S_w)), 1e-10)`` (``lambda_max`` from 3 power iterations started at the row
    sums, as the reference); (2) ConfMix with the softmax-softened posteriors;
    (3) a second fit with the same shrinkage; score = mean ``p(y_i|x_i)`` without the log. The
    reference's Fisher projection keeps all generalised eigenvectors, so its posteriors equal plain
    shrinkage-LDA posteriors; a Cholesky solve replaces its generalised ``eigh``.

    Deviation: the reference overwrites the caller's feature array during ConfMix; this function
    never mutates its input. The shrinkage is scale dependent (raw CNN features give the 1e-10 floor)
    and the score saturates at 1.0 when N is small relative to D.

    Args:
        shrinkage: fixed shrinkage in [0, 1] instead of the adaptive one (``None``, the reference).
    """
    if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
        raise MetricInputError("sfda", f"shrinkage must lie in [0, 1], got {shrinkage}.",
                               "pass a value in [0, 1], or None for SFDA's adaptive shrinkage.")
    features, labels, num_classes = inputs.features, inputs.labels, inputs.num_classes
    posteriors, shrinkage = fit_lda_posteriors("sfda", features, labels, num_classes, shrinkage)
    mixed = _confmix(features, labels, num_classes, posteriors)
    del posteriors
    posteriors, _ = fit_lda_posteriors("sfda", mixed, labels, num_classes, shrinkage)
    return true_class_probability(posteriors, labels)
