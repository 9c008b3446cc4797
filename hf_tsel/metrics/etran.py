"""ETran: Energy-based Transferability estimation (Gholami et al., ICCV'23)."""

from __future__ import annotations

import torch

from ._common import class_counts, class_means, minmax
from ._lda import lda_posteriors, true_class_probability
from ._registry import register
from ._validation import MetricInputError, MetricInputs

__all__ = ["etran", "etran_energy", "etran_lda"]

_PAPER = "Gholami et al., ETran: Energy-Based Transferability Estimation, ICCV 2023"
_REFERENCE = "mgholamikn/ETran@d4551ed8f41f4ed6eba08b9cc1a78bae178acd19:metrics.py"


def _check_percent(percent: float) -> None:
    if not 0.1 <= percent <= 100:
        raise MetricInputError("etran", f"percent must lie in [0.1, 100], got {percent}.",
                               "pass the share of lowest-energy samples to average, in percent (default 0.5).")


@register("etran_energy", consumes="features", paper=_PAPER, reference=f"{_REFERENCE}::Energy_Score")
def etran_energy(inputs: MetricInputs, *, percent: float = 0.5) -> float:
    """Mean of the lowest sample energies ``logsumexp_d x_d`` (ETran's energy term); higher is better.

    As the reference ``Energy_Score(features, 0.5, 'bot')`` (the ETran script passes penultimate
    features, not logits): the energy of a sample is the logsumexp over its feature dimensions and the
    score is the mean of the ``int(10 * percent) * N // 1000`` lowest energies (0.5 % of the samples).

    Deviation: for N < 200 that count is 0 and the reference returns NaN; here at least one sample
    (the lowest energy) is used. Only meaningful relative to other models (see ``etran``).

    Args:
        percent: share of lowest-energy samples averaged, in percent (the reference truncates
            ``10 * percent`` to an integer, so steps of 0.1 %).
    """
    _check_percent(percent)
    energies = torch.logsumexp(inputs.features, dim=1)
    count = max(1, int(percent * 10) * len(energies) // 1000)
    return float(torch.topk(energies, count, largest=False).values.mean())


@register("etran_lda", consumes="features", paper=_PAPER, reference=f"{_REFERENCE}::LDA_Score")
def etran_lda(inputs: MetricInputs) -> float:
    """Mean p(y|x) of ETran's "LDA" classifier, a nearest-class-mean softmax; higher is better.

    The reference builds a shrinkage LDA but takes eigenvectors from ``np.linalg.eigh`` of the
    non-symmetric ``S_w^-1 S_b``, which returns an orthonormal basis ``V``; its coefficients
    ``mu V V^T`` are therefore the class means themselves. The classifier is the softmax over
    ``x . mu_c - 1/2 |mu_c|^2 + log pi_c`` (isotropic unit-covariance LDA on the raw features), which is
    what this computes. It is scale sensitive and saturates at 1.0 for large-norm features.
    """
    features, labels, num_classes = inputs.features, inputs.labels, inputs.num_classes
    means = class_means(features, labels, num_classes)
    priors = class_counts(labels, num_classes).to(features.dtype) / len(labels)
    return true_class_probability(lda_posteriors(features, means, priors, means), labels)


@register("etran", consumes="model_set", paper=_PAPER,
          reference=f"{_REFERENCE}::Energy_Score/LDA_Score + tw.py (-me etran)")
def etran(inputs_by_model: dict[str, MetricInputs], *, energy_weight: float = 0.15,
          percent: float = 0.5) -> dict[str, float]:
    """ETran over a model set: ``w minmax(energy) + (1 - w) minmax(lda)``, w = 0.15 (ETran tw.py); higher is better.

    Both per-model parts (:func:`etran_energy`, :func:`etran_lda`) are min-max scaled over the given
    models, so a score means nothing outside its zoo (a part that is equal for all models scales to 0).
    The paper's third (regression/SVD) term is dead code in the reference and is not included.

    Args:
        energy_weight: weight of the energy part (0.15 in the reference); the LDA part gets the rest.
        percent: passed to :func:`etran_energy`.
    """
    if not 0.0 <= energy_weight <= 1.0:
        raise MetricInputError("etran", f"energy_weight must lie in [0, 1], got {energy_weight}.",
                               "pass e.g. energy_weight=0.15 (the reference).")
    _check_percent(percent)
    models = list(inputs_by_model)
    energy = torch.tensor([etran_energy(inputs_by_model[m], percent=percent) for m in models], dtype=torch.float64)
    lda = torch.tensor([etran_lda(inputs_by_model[m]) for m in models], dtype=torch.float64)
    combined = energy_weight * minmax(energy) + (1 - energy_weight) * minmax(lda)
    return dict(zip(models, combined.tolist()))
