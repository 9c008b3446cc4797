"""The second stage for models whose zoo entry names a source reference set: their embeddings of its images."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, Sequence

from ..errors import HfTselError
from ..source_reference import REFERENCE_SEED, ReferenceFeatures, SourceReference, source_reference_of
from .extract_models import extract
from .outcomes import ModelOutcome

__all__ = ["attach_source_references"]

_MISSING_REFERENCE_FIX = ("run once without --from-cache (from_cache=False): the source reference features are "
                          "extracted then and cached for every later run")


def attach_source_references(outcomes: Sequence[ModelOutcome], *, from_cache: bool = False,
                             **extract_options: Any) -> list[ModelOutcome]:
    """``outcomes`` with ``reference`` (or ``reference_error``) set on each extracted one whose entry names a source
    reference (new :class:`ModelOutcome` objects; the others are returned as they are).

    Models sharing a reference are extracted in one :func:`hf_tsel.extract` call (the dataset is read
    once). A reference that cannot be read, or a model that fails on it, only costs that model its
    reference-based scores. ``extract_options`` are passed to :func:`hf_tsel.extract` (device,
    cache folder, batch size, ...).
    """
    report = extract_options.pop("on_event", None)
    if report is not None:  # say which dataset line is the reference set, not a second target
        extract_options["on_event"] = lambda event: report(
            replace(event, message=f"source reference set: {event.message}") if event.kind == "dataset" else event)
    groups: dict[SourceReference, list[ModelOutcome]] = {}
    for outcome in outcomes:
        # by status, not by features: in a zoo-parallel run only the main process holds every model's features,
        # yet all processes must make the same extract() calls
        reference = source_reference_of(outcome.entry) if outcome.status != "failed" else None
        if reference is not None:
            groups.setdefault(reference, []).append(outcome)
    attached: dict[str, ModelOutcome] = {}
    for reference, group in groups.items():
        try:
            with warnings.catch_warnings():  # max_samples caps a large reference set; a smaller one is used whole
                warnings.filterwarnings("ignore", message=r".*samples requested but only")
                result = extract(reference.dataset, models=[o.entry for o in group], split=reference.split,
                                 config=reference.config, revision=reference.revision,
                                 image_column=reference.image_column, label_column=reference.label_column,
                                 samples_per_class=reference.samples_per_class, max_samples=reference.max_samples,
                                 seed=REFERENCE_SEED, from_cache=from_cache, missing_fix=_MISSING_REFERENCE_FIX,
                                 **extract_options)
            source_classes = reference.source_classes(result.data.class_names)  # e.g. WordNet ids -> ImageNet-1k
        except HfTselError as exc:
            attached.update({o.entry.name: replace(o, reference_error=f"source reference {reference.describe()}: {exc}")
                             for o in group})
            continue
        for outcome in group:
            done = result[outcome.entry.name]
            if done.features is None:
                attached[outcome.entry.name] = replace(
                    outcome, reference_error=f"source reference {reference.describe()}: {done.error}")
            else:
                attached[outcome.entry.name] = replace(outcome, reference=ReferenceFeatures(
                    done.features.features, source_classes[done.labels], reference, done.features.manifest.get("key")))
    return [attached.get(o.entry.name, o) for o in outcomes]
