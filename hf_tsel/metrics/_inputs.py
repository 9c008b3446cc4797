"""The one place that turns what the pipeline holds of a model into a metric's call inputs, by its input kind."""

from __future__ import annotations

from typing import Any, Mapping

from ._registry import InputKind, MetricSpec
from ._validation import MetricInputError

__all__ = ["NotApplicable", "metric_inputs"]


class NotApplicable(MetricInputError):
    """The model lacks an input the metric consumes (a source head, a reference set): no score, not a failure."""

    def __init__(self, metric: str, missing: str, fix: str):
        super().__init__(metric, f"not applicable: {missing}.", fix)
        self.note = f"not applicable: {missing}"  # the NaN score's note in a results table


def metric_inputs(spec: MetricSpec, features: Any, labels: Any, *, source_probs: Any = None,
                  reference: tuple[Any, Any] | None = None,
                  priors: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[tuple[Any, Any], dict[str, Any]]:
    """The positional ``(features, labels)`` and keyword inputs of :func:`~hf_tsel.metrics.score` for ``spec``.

    For a ``MODEL_SET`` metric they are those of :func:`~hf_tsel.metrics.score_zoo`: ``features`` maps model
    names to features, and a metric taking ``priors`` (the metadata priors) gets them.

    Args:
        features, labels: the model's target features ``[N, D]`` and class ids ``[N]``.
        source_probs: ``[N, C_s]`` probabilities of the model's source classifier head, if it has one.
        reference: ``(features, source labels)`` of the model's source reference images, if any.
        priors: model name -> zoo metadata (``params``, ``imagenet_top1``...).

    Raises:
        NotApplicable: the model lacks what the metric consumes (its ``note`` says what and what to do).

    Example:
        >>> from hf_tsel.metrics import get_metric
        >>> metric_inputs(get_metric("leep"), "x", "y", source_probs="p")
        ((None, 'y'), {'source_probs': 'p'})
    """
    kind = spec.consumes
    if kind is InputKind.MODEL_SET:
        return (features, labels), ({"priors": priors} if "priors" in spec.parameters else {})
    if kind is InputKind.REFERENCE_FEATURES:
        if reference is None:
            raise NotApplicable(spec.name, "the zoo entry names no source_reference (images of the model's "
                                "pre-training task); add one (docs/zoos.md), or use persistence_ratio_head, its "
                                "offline stand-in", "add a source_reference to the model's zoo entry.")
        return reference, {}
    if not kind.needs_source_probs:
        return (features, labels), {}
    if source_probs is None:
        raise NotApplicable(spec.name, "the model has no source classifier head",
                            "use a model with its classifier head, or a metric that reads features only.")
    return (features if kind.needs_features else None, labels), {"source_probs": source_probs}
