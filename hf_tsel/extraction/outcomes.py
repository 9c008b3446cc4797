"""What an extraction returns: each model's :class:`ModelOutcome`, the run's :class:`Extraction`, its events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np

from ..data import ImageDataset
from ..errors import CacheError, HfTselError
from ..features import CachedFeatures
from ..source_reference import ReferenceFeatures
from ..zoo import ZooEntry

__all__ = ["Extraction", "ExtractionEvent", "MissingFeaturesError", "ModelOutcome", "failure_reason"]


@dataclass(frozen=True)
class ModelOutcome:
    """What happened to one model: its features (with the labels of their samples), or why there are none.

    Frozen: a later stage that changes it (fewer classes, a source reference attached) returns a new one
    (:func:`dataclasses.replace`), so what a stage received is never changed under it.
    """

    entry: ZooEntry
    status: str  # "cached" | "extracted" | "resumed" | "failed" | "left_out" (not started: a time budget)
    revision: str | None = None
    features: CachedFeatures | None = None
    error: str | None = None
    extraction_seconds: float = 0.0
    data_seconds: float = 0.0
    forward_seconds: float = 0.0
    num_corrupt: int = 0
    labels: np.ndarray | None = None  # class of each row of ``features.features``
    reference: ReferenceFeatures | None = None  # source reference embeddings (attach_source_references)
    reference_error: str | None = None  # why the entry's source reference gave no features

    def as_dict(self) -> dict[str, Any]:
        has_logits = self.features is not None and self.features.source_logits is not None
        reference = self.reference.as_dict() if self.reference is not None else (
            {"error": self.reference_error} if self.reference_error else None)
        return {"name": self.entry.name, "model_id": self.entry.hub_id, "revision": self.revision,
                "status": self.status, "error": self.error, "extraction_seconds": round(self.extraction_seconds, 3),
                "data_seconds": round(self.data_seconds, 3), "forward_seconds": round(self.forward_seconds, 3),
                "num_corrupt": self.num_corrupt, "has_source_logits": has_logits,
                "details": self.features.manifest.get("details", {}) if self.features is not None else {},
                "feature_dim": None if self.features is None else int(self.features.features.shape[1]),
                "cache_key": self.features.manifest.get("key") if self.features is not None else None,
                "precision": self.features.manifest.get("precision", "fp32") if self.features is not None else None,
                "source_reference": reference}


@dataclass(frozen=True)
class ExtractionEvent:
    """One step of :func:`extract`, for a progress display.

    ``kind`` is ``"dataset"`` (sampled), ``"cached"`` (features reused, model not loaded),
    ``"extracting"`` (``total`` samples to go), ``"progress"`` (``advance`` more done),
    ``"extracted"`` or ``"failed"``. ``message`` is one readable line (empty for progress).
    """

    kind: Literal["dataset", "cached", "extracting", "progress", "extracted", "failed"]
    message: str = ""
    model: str | None = None
    total: int = 0
    advance: int = 0
    process_index: int = 0


class MissingFeaturesError(CacheError):
    """``from_cache=True`` but the cache holds no features for some models (``missing``: their names)."""

    def __init__(self, missing: Sequence[str], cache_root: Path, fix: str | None = None):
        self.missing, self.cache_root = list(missing), cache_root
        super().__init__(f"the feature cache {cache_root} has no features for {len(self.missing)} model(s) on this "
                         f"dataset sample: {', '.join(self.missing)}.",
                         fix or "extract them first (hf_tsel.extract or `hf-tsel extract`) with the same dataset, "
                                "sampling options and cache folder, or leave them out")


@dataclass
class Extraction(Mapping):
    """Result of :func:`extract`: a mapping model name -> :class:`ModelOutcome`, in zoo order, plus the sample."""

    data: ImageDataset
    outcomes: dict[str, ModelOutcome]
    parallel: str  # "zoo" or "images"
    num_processes: int
    device: Any
    cache_dir: Path | None
    cache_error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # "data", "extraction"
    is_main_process: bool = True

    def __getitem__(self, name: str) -> ModelOutcome:
        return self.outcomes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def features(self) -> dict[str, CachedFeatures]:
        """Features of the models that have some, by model name."""
        return {name: o.features for name, o in self.outcomes.items() if o.features is not None}

    @property
    def failures(self) -> dict[str, str]:
        """Why the other models have none, by model name."""
        return {name: o.error or "no features" for name, o in self.outcomes.items() if o.features is None}


def failure_reason(exc: Exception) -> str:
    """One line saying why a model failed (our errors carry their own wording)."""
    return " ".join((str(exc) if isinstance(exc, HfTselError) else f"{type(exc).__name__}: {exc}").split())
