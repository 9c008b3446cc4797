"""LEEP (Nguyen et al., ICML 2020) and NCE (Tran et al., ICCV 2019): scores of a model's source head."""

from __future__ import annotations

import torch

from ._common import one_hot
from ._registry import register
from ._validation import MetricInputs

__all__ = ["leep", "nce", "expected_empirical_prediction"]

# NCE adds this inside its logarithms (as the reference does) so empty (y, z) cells give 0·log 0 = 0.
_LOG_FLOOR = 1e-20


def expected_empirical_prediction(source_probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[N, C]`` expected empirical prediction ``Σ_z θ(z|x) P̂(y|z)`` of LEEP (paper Eqs. 1–3).

    ``P̂(y, z) = (1/N) Σ_{i: y_i = y} θ(z|x_i)`` is the empirical joint of target labels and
    ("dummy") source labels; ``P̂(y|z)`` its column-normalised form. Source classes that receive no
    probability mass at all contribute nothing to any sample and are skipped instead of giving 0/0.
    """
    joint = one_hot(labels, num_classes, source_probs.dtype).T @ source_probs / len(labels)  # [C, C_s]
    marginal = joint.sum(dim=0)
    used = marginal > 0
    conditional = joint[:, used] / marginal[used]
    return source_probs[:, used] @ conditional.T


@register("leep", consumes="source_probs",
          paper="Nguyen et al., LEEP: A New Measure to Evaluate Transferability of Learned Representations, ICML 2020",
          reference="thuml/LogME@56551ca:LEEP.py::LEEP")
def leep(inputs: MetricInputs) -> float:
    """LEEP: mean log-likelihood of the labels under the source head's expected empirical predictor.

    Paper Eq. 4: ``T = (1/N) Σ_i log Σ_z P̂(y_i|z) θ(z|x_i)`` on the softmax outputs ``θ`` of the
    model's own classifier (``source_probs``); features are not used (``features=None`` is fine).
    The probabilities are used as given (not re-normalised), as in the reference.
    """
    predictions = expected_empirical_prediction(inputs.source_probs, inputs.labels, inputs.num_classes)
    return float(torch.log(predictions.gather(1, inputs.labels[:, None])).mean())


@register("nce", consumes="source_probs",
          paper="Tran et al., Transferability and Hardness of Supervised Classification Tasks, ICCV 2019",
          reference="thuml/LogME@56551ca:NCE.py::NCE")
def nce(inputs: MetricInputs) -> float:
    """NCE: negative conditional entropy −H(Y|Z) of the labels given the hard source predictions.

    Paper Eq. 2 / Definition 1, with ``Z = argmax_z θ(z|x)`` over the model's source classes and the
    empirical joint of (Y, Z). Source classes that are never predicted are masked, and 1e-20 is added
    inside the logarithm, as in the reference.
    """
    source_labels = inputs.source_probs.argmax(dim=1)
    n_source = inputs.source_probs.shape[1]
    pair_counts = torch.bincount(inputs.labels * n_source + source_labels, minlength=inputs.num_classes * n_source)
    joint = pair_counts.reshape(inputs.num_classes, n_source).to(inputs.source_probs.dtype) / len(source_labels)
    p_z = joint.sum(dim=0)
    used = p_z > 0
    p_y_given_z = joint[:, used] / p_z[used] + _LOG_FLOOR
    entropy_per_z = -(p_y_given_z * torch.log(p_y_given_z)).sum(dim=0)
    return float(-(entropy_per_z * p_z[used]).sum())
