"""Input validation shared by every metric.

Every public entry point (:func:`hf_tsel.metrics.score`, :func:`hf_tsel.metrics.score_zoo`)
runs the raw user inputs through :func:`prepare_inputs` before a metric sees them, so metric
implementations may assume: 2-D finite floating features, labels remapped to ``0..C-1``,
at least two classes and at least two samples per class, all on one torch device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import MetricInputError

__all__ = ["MetricInputError", "MetricInputs", "prepare_inputs", "prepare_model_inputs", "resolve_device", "as_tensor"]


@dataclass(frozen=True)
class MetricInputs:
    """Validated inputs handed to a metric implementation."""

    features: torch.Tensor | None  # [N, D], floating, finite
    labels: torch.Tensor  # [N], int64 in 0..C-1
    num_classes: int
    source_probs: torch.Tensor | None = None  # [N, C_s], rows are probability vectors
    class_values: np.ndarray | None = None  # original label value of each class index


def resolve_device(device: str | torch.device | None, *arrays: Any) -> torch.device:
    """The caller's device if given, else the device of the first torch tensor, else CPU."""
    if device is not None:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise MetricInputError("device", f"{device!r} is not a torch device ({exc}).",
                                   "pass 'cpu', 'cuda' or 'cuda:N', or leave device out.") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise MetricInputError("device", f"device {device!r} was asked for, but this machine has no usable CUDA GPU.",
                                   "pass device='cpu', or leave device out (the inputs' device, else CPU).")
        return resolved
    for array in arrays:
        if isinstance(array, torch.Tensor):
            return array.device
    return torch.device("cpu")


def as_tensor(array: Any, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a numpy array, a tensor or a nested list to a tensor on ``device`` without copying twice."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(np.asarray(array)))
    return tensor.to(device=device, dtype=dtype or tensor.dtype)


def _check_features(metric: str, features: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    try:
        raw = features if isinstance(features, torch.Tensor) else np.asarray(features)
    except Exception as exc:  # ragged lists and the like
        raise MetricInputError(metric, f"features could not be read as an array ({exc}).",
                               "pass a 2-D numpy array or torch tensor of shape [n_samples, n_features].") from None
    if raw.ndim != 2:
        raise MetricInputError(metric, f"features must be 2-D [n_samples, n_features], got shape {tuple(raw.shape)}.",
                               "flatten or pool each sample into one feature vector first (e.g. features.reshape(len(features), -1)).")
    if isinstance(raw, torch.Tensor):
        is_real = not raw.dtype.is_complex and raw.dtype != torch.bool
    else:
        is_real = np.issubdtype(raw.dtype, np.number) and not np.issubdtype(raw.dtype, np.complexfloating)
    if not is_real:
        raise MetricInputError(metric, f"features must be real numbers, got dtype {raw.dtype}.",
                               "convert them with features.astype('float32').")
    if raw.shape[1] < 1:
        raise MetricInputError(metric, "features have zero columns.", "pass at least one feature dimension.")
    if raw.shape[0] < 1:
        raise MetricInputError(metric, "features have zero rows (no samples).", "pass the features of your samples.")
    tensor = as_tensor(raw, device, dtype)
    # A float64 sum of finite values stays finite, so one cheap reduction clears the common case.
    if not math.isfinite(float(tensor.sum(dtype=torch.float64))) and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).any(dim=1).sum())
        raise MetricInputError(metric, f"features contain NaN or infinite values in {bad} of {len(tensor)} rows.",
                               "drop those samples or fix the feature extraction (e.g. fp16 overflow).")
    _check_scale(metric, tensor)
    return tensor


def prepare_model_inputs(metric: str, model: str, features: Any, labels: Any, **options: Any) -> MetricInputs:
    """:func:`prepare_inputs` for one model of a set; an error names that model (which of 20 is broken?)."""
    try:
        return prepare_inputs(metric, features, labels, **options)
    except MetricInputError as exc:
        raise MetricInputError(metric, f"model {model!r}: {exc.problem}", exc.fix) from None


def _check_scale(metric: str, tensor: torch.Tensor) -> None:
    """Refuse finite features so large that sums of their squares (covariances, norms) overflow float64:
    the metrics would fail deep inside a linear-algebra routine instead of saying why."""
    low, high = tensor.aminmax()
    largest = max(abs(float(low)), abs(float(high)))
    limit = math.sqrt(torch.finfo(torch.float64).max / max(1, tensor.numel()))
    if largest > limit:
        raise MetricInputError(metric, f"feature values reach {largest:.3g}, too large for this many values "
                                       f"({tensor.shape[0]} x {tensor.shape[1]}): their squares overflow.",
                               "rescale the features (e.g. divide by their largest absolute value, or standardise "
                               "each dimension).")


def _check_labels(metric: str, labels: Any, n_samples: int | None, min_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    raw = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise MetricInputError(metric, f"labels must be 1-D (one class id per sample), got shape {raw.shape}.",
                               "multi-label targets are not supported; pass one integer class id per sample.")
    if raw.dtype == bool or not np.issubdtype(raw.dtype, np.integer):
        raise MetricInputError(metric, f"labels must be integer class ids, got dtype {raw.dtype}.",
                               "pass integer labels (e.g. labels.astype(int)); regression targets are not supported.")
    if n_samples is not None and len(raw) != n_samples:
        raise MetricInputError(metric, f"features have {n_samples} rows but labels have {len(raw)} entries.",
                               "pass exactly one label per feature row, in the same order.")
    class_values, remapped, counts = np.unique(raw, return_inverse=True, return_counts=True)
    if len(class_values) < 2:
        raise MetricInputError(metric, f"labels contain {len(class_values)} class; transferability needs at least 2.",
                               "use a dataset (or split) with at least two classes.")
    if counts.min() < min_per_class:
        small = [f"{class_values[i].item()!r} ({counts[i]})" for i in np.flatnonzero(counts < min_per_class)[:5]]
        raise MetricInputError(metric, f"every class needs at least {min_per_class} samples; too few in class(es) {', '.join(small)}.",
                               "sample more images per class or drop those classes.")
    return remapped.astype(np.int64), class_values


def _check_source_probs(metric: str, probs: Any, n_samples: int, device: torch.device) -> torch.Tensor:
    tensor = _check_features(metric, probs, device, torch.float64)
    if len(tensor) != n_samples:
        raise MetricInputError(metric, f"source_probs have {len(tensor)} rows but labels have {n_samples} entries.",
                               "pass one row of source-class probabilities per sample.")
    if bool((tensor < 0).any()):
        raise MetricInputError(metric, "source_probs contain negative values; they look like logits, not probabilities.",
                               "apply a softmax over the source classes first (torch.softmax(logits, dim=1)).")
    row_sums = tensor.sum(dim=1)
    if bool(((row_sums - 1).abs() > 1e-3).any()):
        raise MetricInputError(metric, "source_probs rows do not sum to 1.",
                               "pass softmax probabilities over the source classes, one row per sample.")
    return tensor


def prepare_inputs(metric: str, features: Any, labels: Any, *, needs_features: bool, needs_source_probs: bool,
                   source_probs: Any = None, device: str | torch.device | None = None,
                   dtype: torch.dtype = torch.float64, min_per_class: int = 2) -> MetricInputs:
    """Validate and convert raw inputs for ``metric``.

    Labels that are not ``0..C-1`` are remapped in sorted order of their values.

    Example:
        >>> import numpy as np
        >>> inputs = prepare_inputs("logme", np.eye(4), [5, 5, 9, 9], needs_features=True, needs_source_probs=False)
        >>> inputs.num_classes, inputs.labels.tolist()
        (2, [0, 0, 1, 1])
    """
    target = resolve_device(device, features, source_probs, labels)
    feature_tensor = None
    n_samples = None
    if needs_features:
        if features is None:
            raise MetricInputError(metric, "this metric needs features, got None.", "pass features of shape [n_samples, n_features].")
        feature_tensor = _check_features(metric, features, target, dtype)
        n_samples = len(feature_tensor)
    label_array, class_values = _check_labels(metric, labels, n_samples, min_per_class)
    probs_tensor = None
    if needs_source_probs:
        if source_probs is None:
            raise MetricInputError(metric, "this metric needs source_probs (softmax outputs of the model's source head).",
                                   "pass source_probs=[n_samples, n_source_classes] probabilities.")
        probs_tensor = _check_source_probs(metric, source_probs, len(label_array), target)
    return MetricInputs(features=feature_tensor, labels=torch.from_numpy(label_array).to(target),
                        num_classes=len(class_values), source_probs=probs_tensor, class_values=class_values)
