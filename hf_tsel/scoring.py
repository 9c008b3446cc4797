"""Scoring: every requested metric on every model's features, one failure never losing the other scores.

Example:
    >>> import hf_tsel
    >>> from hf_tsel.scoring import resolve_metrics, score_models
    >>> features = hf_tsel.extract("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
    >>> records = score_models(resolve_metrics(["logme"]), list(features.values()), features.data.labels)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .defaults import DEFAULT_METRICS
from .errors import UserError
from .extraction import ModelOutcome
from .features import CachedFeatures
from .metrics import (InputKind, MetricInputError, NotApplicable, check_parameters, get_metric, metric_inputs, score,
                      score_zoo)
from .metrics.priors import prior_value

__all__ = ["check_metadata_priors", "checked_metric_params", "drop_non_finite_models", "drop_thin_classes",
           "missing_metadata", "non_finite_reason", "resolve_metrics", "score_models"]

logger = logging.getLogger(__name__)


def resolve_metrics(names: Iterable[str] | str | None) -> list[Any]:
    """Registry specs of the requested metric names (default: :data:`DEFAULT_METRICS`); unknown names raise."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
        if not names:
            raise UserError("the metric list is empty (--metrics \"\")",
                            fix="name at least one metric (see `hf-tsel metrics`), or leave out --metrics for the "
                                "defaults.")
    names = list(names or DEFAULT_METRICS)
    specs, seen = [], set()
    for name in names:
        try:
            spec = get_metric(name)
        except MetricInputError as exc:
            raise UserError(f"{exc.problem} {exc.fix}") from None
        if spec.name not in seen:
            specs.append(spec)
            seen.add(spec.name)
    return specs


def checked_metric_params(specs: Sequence[Any], metric_params: dict[str, dict] | None) -> dict[str, dict]:
    """``metric_params`` keyed by registry name, checked before any work (a bad one must not become a NaN score)."""
    by_name = {spec.name: spec for spec in specs}
    checked = {}
    for name, params in (metric_params or {}).items():
        spec = by_name.get(get_metric(name).name)
        if spec is None:
            raise MetricInputError(name, "metric_params names a metric this run does not compute.",
                                   f"add it to the metrics, or drop its parameters; this run computes {sorted(by_name)}.")
        check_parameters(spec, params)
        checked[spec.name] = params
    return checked


def drop_thin_classes(outcomes: Sequence[ModelOutcome], data: Any) -> list[ModelOutcome]:
    """``outcomes`` without the classes that undecodable images left with fewer than 2 samples; says so once.

    Metrics need every class present twice; scoring the classes that remain (and recording how
    many) beats both a crash and a silent score on fewer classes than the run reports. An outcome
    that changes is returned as a new object; a model left with fewer than 2 classes is failed.
    """
    names, expected = data.class_names, np.bincount(data.labels, minlength=len(data.class_names))
    notes, kept = set(), []
    for o in outcomes:
        labels = None if o.features is None else data.labels[o.features.positions]
        counts = None if labels is None else np.bincount(labels, minlength=len(names))
        thin = np.array([], int) if counts is None else np.flatnonzero((counts < 2) & (expected > 0))
        if not len(thin):
            kept.append(o)
            continue
        keep = ~np.isin(labels, thin)
        remaining = len(np.unique(labels[keep]))
        lost = "; ".join(f"class {names[c]!r} " + ("lost all its images" if counts[c] == 0 else
                                                    f"has {counts[c]} readable image") for c in thin)
        notes.add(f"{lost} (the others could not be decoded): left out, the ranking uses the {remaining} remaining "
                  "classes")
        if remaining < 2:
            kept.append(replace(o, features=None, labels=None, status="failed",
                                error="fewer than 2 classes have 2 or more readable images"))
            continue
        f, rows = o.features, torch.from_numpy(keep)
        kept.append(replace(o, labels=labels[keep], features=CachedFeatures(
            f.features[rows], f.positions[keep], None if f.source_logits is None else f.source_logits[rows], f.manifest)))
    for note in sorted(notes):
        warnings.warn(note, stacklevel=3)
    return kept


def non_finite_reason(features: torch.Tensor) -> str | None:
    """What is wrong with ``features`` that hold NaN/inf (rows counted), or None when every value is finite."""
    bad = int((~torch.isfinite(features)).any(dim=1).sum()) if features.numel() else 0
    if not bad:
        return None
    return (f"its features contain NaN or infinite values in {bad} of {len(features)} samples (damaged or "
            "overflowing weights, or a graph that emits NaN)")


def drop_non_finite_models(outcomes: Sequence[ModelOutcome]) -> list[ModelOutcome]:
    """``outcomes`` with the models whose features hold NaN/inf failed (a new outcome, the reason in ``error``).

    Model-set metrics (ETran, NCTI) and the consensus compare all models at once, so one broken
    model would otherwise turn every model's score into NaN; per-model metrics refuse such features
    anyway. Dropping the model here, with its reason, lets the others be ranked (exit code 3).
    """
    kept = []
    for o in outcomes:
        reason = None if o.features is None else non_finite_reason(o.features.features)
        kept.append(o if not reason else replace(
            o, features=None, labels=None, status="failed",
            error=(f"{reason}; left out of every metric and the consensus. Fix: check the model's weights or "
                   "graph; if they are sound, try --precision fp32 (a half precision can overflow)")))
    return kept


def missing_metadata(spec: Any, entries: Sequence[Any]) -> dict[str, str]:
    """Entry name -> why a zoo-metadata prior (``prior:params``, ``prior:imagenet_top1``) cannot score it: its
    entry does not record the fact. Such a model is "not applicable", like a headless model for LEEP; it must
    not fail the prior for every other model."""
    fact = spec.metadata_fact
    if fact is None:  # not a prior, or one that needs no metadata (the feature width)
        return {}
    gaps = {}
    for entry in entries:
        try:
            prior_value(spec.name, fact, entry.name, None, {entry.name: entry.metadata})
        except MetricInputError as exc:
            gaps[entry.name] = f"not applicable: {exc.problem} Fix: {exc.fix}"
    return gaps


def check_metadata_priors(specs: Sequence[Any], entries: Sequence[Any]) -> None:
    """Before any work: a metadata prior that no model of the run can take is an error naming the fix."""
    for spec in specs:
        gaps = missing_metadata(spec, entries)
        if entries and len(gaps) == len(entries):
            fact = spec.metadata_fact
            raise UserError(f"--metrics {spec.name} reads each model's published {fact} from its zoo entry's metadata, "
                            f"and none of the {len(entries)} model(s) records it",
                            fix=f"add `metadata: {{{fact}: ...}}` to the zoo entries (docs/zoos.md), or leave "
                                f"{spec.name} out (prior:feature_dim needs no metadata).")


def _metric_failure(metric: str, model: str, exc: Exception) -> str:
    """The note of a failed score; unexpected errors also warn (traceback with -v)."""
    if not isinstance(exc, MetricInputError):
        logger.debug("metric %s failed on %s", metric, model, exc_info=exc)
        warnings.warn(f"metric {metric} failed on {model}: {type(exc).__name__}: {exc}", stacklevel=3)
        return f"failed: {type(exc).__name__}: {exc}"
    return f"failed: {exc}"


def _model_inputs(spec: Any, outcome: ModelOutcome, labels: np.ndarray) -> tuple[tuple, dict] | str:
    """The positional and keyword inputs of :func:`hf_tsel.metrics.score` for one model
    (:func:`hf_tsel.metrics.metric_inputs`), or why the metric does not apply to it. ``reference_features``
    metrics (the persistence ratio) read the model's source reference embeddings
    (:func:`hf_tsel.extraction.attach_source_references`), not the target features."""
    feats, reference = outcome.features, outcome.reference
    if reference is None and outcome.reference_error and spec.consumes is InputKind.REFERENCE_FEATURES:
        return f"failed: {outcome.reference_error}"
    head = feats.source_logits  # softmax only for the metrics that read it
    probs = torch.softmax(head.double(), dim=1) if head is not None and spec.consumes.needs_source_probs else None
    try:
        return metric_inputs(spec, feats.features, labels[feats.positions], source_probs=probs,
                             reference=None if reference is None else (reference.features, reference.labels))
    except NotApplicable as exc:
        return exc.note


def score_models(specs: Sequence[Any], outcomes: Sequence[ModelOutcome], labels: np.ndarray, *, seed: int = 0,
                 device: Any = None, metric_params: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One partial record per (model, metric): ``score`` (NaN if it does not apply or failed), ``note``, ``seconds``.

    Metrics that consume ``reference_features`` (the persistence ratio) read each outcome's
    ``reference`` (:func:`_model_inputs`), not the target features.
    """
    metric_params = metric_params or {}
    ready = [o for o in outcomes if o.features is not None]
    records = []

    def record(outcome: ModelOutcome, spec: Any, value: float, note: str | None, seconds: float) -> None:
        records.append({"model": outcome.entry.name, "metric": spec.name, "score": value, "note": note,
                        "seconds": seconds})

    for spec in specs:
        params = metric_params.get(spec.name, {})
        if spec.consumes is InputKind.MODEL_SET:
            # one model's NaN features must not take the set's score down for every model
            broken = {o.entry.name: f"left out: {why}" for o in ready
                      if (why := non_finite_reason(o.features.features))}
            broken.update(missing_metadata(spec, [o.entry for o in ready if o.entry.name not in broken]))
            members = [o for o in ready if o.entry.name not in broken]
            common = members[0].features.positions if members else np.array([], dtype=np.int64)
            for o in members[1:]:
                common = np.intersect1d(common, o.features.positions)
            features = {o.entry.name: o.features.features[np.searchsorted(o.features.positions, common)]
                        for o in members}
            (inputs, set_labels), extra = metric_inputs(spec, features, labels[common],
                                                        priors={o.entry.name: o.entry.metadata for o in members})
            start = time.perf_counter()
            note, values = None, {}
            params = {**extra, **params}
            if len(members) < 2:
                note = "not applicable: this metric compares at least 2 models with finite features"
            else:
                try:
                    values = score_zoo(spec.name, inputs, set_labels, seed=seed, device=device, **params)
                except Exception as exc:  # noqa: BLE001 (one metric's failure must not lose the other scores)
                    note = _metric_failure(spec.name, f"the {len(members)} models", exc)
            seconds = (time.perf_counter() - start) / max(1, len(members))
            for o in ready:
                value = values.get(o.entry.name, float("nan"))
                record(o, spec, value, broken.get(o.entry.name, note), seconds)
            continue
        for o in ready:
            inputs = _model_inputs(spec, o, labels)
            if isinstance(inputs, str):
                record(o, spec, float("nan"), inputs, 0.0)
                continue
            args, extra = inputs
            start = time.perf_counter()
            try:
                value, note = score(spec.name, *args, seed=seed, device=device, **extra, **params), None
            except Exception as exc:  # noqa: BLE001 (one metric's failure must not lose the other scores)
                value, note = float("nan"), _metric_failure(spec.name, o.entry.name, exc)
            record(o, spec, value, note, time.perf_counter() - start)
    return records
