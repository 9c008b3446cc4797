"""Model priors as baseline "metrics": facts about a model that ignore the target data.

Singh, Hess and Vanschoren (ICLR 2026, arXiv:2510.06448) show that a static ranking by model size
matches or beats published transferability metrics on the standard benchmark, so every benchmark
table lists these next to the metrics. ``prior:params`` and ``prior:imagenet_top1`` read the zoo
entry's ``metadata`` (``priors={model: {"params": ..., "imagenet_top1": ...}}``);
``prior:feature_dim`` reads the width of the features themselves.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

from ._registry import InputKind, register
from ._validation import MetricInputError, MetricInputs

__all__ = ["PRIOR_METRICS", "prior_value"]

_PAPER = "Singh, Hess, Vanschoren, ICLR 2026 (arXiv:2510.06448): model-size baseline"


def prior_value(metric: str, fact: str, model: str, inputs: MetricInputs | None,
                priors: Mapping[str, Mapping[str, Any]] | None) -> float:
    """One model's fact; raises :class:`MetricInputError` (with the fix) when the zoo does not record it."""
    if fact == "feature_dim" and inputs is not None and inputs.features is not None:
        return float(inputs.features.shape[1])
    value = ((priors or {}).get(model) or {}).get(fact)
    if value is not None and not isinstance(value, numbers.Real):
        raise MetricInputError(metric, f"model {model!r}: its {fact} is {value!r}, not a number.",
                               f"give {fact} as a plain number (e.g. 25000000, not '25M').")
    if value is None or not math.isfinite(float(value)):
        raise MetricInputError(metric, f"model {model!r} has no published {fact} in its metadata.",
                               f"add metadata: {{{fact}: ...}} to its zoo entry, or leave {metric} out.")
    return float(value)


def _register_prior(fact: str, summary: str) -> None:
    name = f"prior:{fact}"

    def prior(inputs: dict[str, MetricInputs], *, priors: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, float]:
        return {model: prior_value(name, fact, model, model_inputs, priors) for model, model_inputs in inputs.items()}

    prior.__doc__ = summary
    # the feature width is read from the features themselves, every other fact from the zoo metadata
    register(name, consumes=InputKind.MODEL_SET, paper=_PAPER, prior=fact,
             metadata_fact=None if fact == "feature_dim" else fact)(prior)


_register_prior("params", "Parameter count of the model (zoo metadata): bigger models are assumed to transfer better.")
_register_prior("imagenet_top1", "Published ImageNet-1k top-1 accuracy of the model (zoo metadata).")
_register_prior("feature_dim", "Width of the model's features: a size proxy available for every model.")

PRIOR_METRICS: tuple[str, ...] = ("prior:params", "prior:imagenet_top1", "prior:feature_dim")
