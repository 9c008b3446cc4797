"""Frozen features of a zoo on a dataset split, through the shared feature cache of ``hf-tsel rank``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..extraction import attach_source_references, extract


@dataclass
class ZooFeatures:
    """Features (:class:`hf_tsel.features.CachedFeatures`) by model name, and why other models have none."""

    data: Any  # hf_tsel.data.ImageDataset
    entries: dict[str, Any]  # model name -> ZooEntry
    features: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    # source reference embeddings (hf_tsel.source_reference.ReferenceFeatures) and why some models have none
    references: dict[str, Any] = field(default_factory=dict)
    reference_failures: dict[str, str] = field(default_factory=dict)

    def feature_keys(self) -> dict[str, str]:
        return {name: f.manifest.get("key", "") for name, f in self.features.items()}


def zoo_features(dataset: Any, zoo: str | Path, *, split: str = "train", config: str | None = None,
                 revision: str | None = None, image_column: str | None = None, label_column: str | None = None,
                 samples_per_class: int | None = None, max_samples: int | None = None, seed: int = 0,
                 cache_dir: str | Path | None = None, device: str | None = None, batch_size: int = 64,
                 allow_pickle: bool = False, trust_remote_code: bool = False,
                 source_references: bool = False, num_workers: int = 0, precision: str = "auto",
                 on_event: Any = None) -> ZooFeatures:
    """Extract (or reuse from the cache) the features of every model of ``zoo`` on one dataset split.

    The extraction is :func:`hf_tsel.extract` itself, so the features land in, and come from, the
    same cache as every ranking run, and the dataset is read once. With ``source_references`` the
    models' source reference embeddings are attached too (:func:`hf_tsel.extraction.attach_source_references`).
    """
    options = dict(cache_dir=cache_dir, device=device, batch_size=batch_size, allow_pickle=allow_pickle,
                   trust_remote_code=trust_remote_code, num_workers=num_workers, precision=precision,
                   on_event=on_event)
    result = extract(dataset, zoo=zoo, split=split, config=config, revision=revision, image_column=image_column,
                     label_column=label_column, samples_per_class=samples_per_class, max_samples=max_samples,
                     seed=seed, **options)
    outcomes = list(result.values())
    if source_references:
        outcomes = attach_source_references(outcomes, **options)
    outcome = ZooFeatures(data=result.data, entries={name: o.entry for name, o in result.items()},
                          features=result.features, failures=result.failures,
                          references={o.entry.name: o.reference for o in outcomes if o.reference is not None},
                          reference_failures={o.entry.name: o.reference_error for o in outcomes if o.reference_error})
    if not outcome.features:
        shown = "; ".join(f"{name}: {why}" for name, why in list(outcome.failures.items())[:3])
        more = len(outcome.failures) - 3
        raise UserError(f"no model of zoo {zoo!r} produced features ({shown}{f'; {more} more' if more > 0 else ''})",
                        fix="check those models (or pass --zoo with models this machine can load).")
    return outcome
