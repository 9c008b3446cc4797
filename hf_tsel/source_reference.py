"""Source reference sets: a sample of the images a model was pre-trained on, for model-prior metrics.

The persistence ratio of Gutierrez & Lobel (NeurReps 2025) scores a model by the cluster
structure of its embeddings of its *source* ("original") data, labelled by the source classes; it
never looks at the target. A zoo entry names that data::

    source_reference:
      dataset: my-org/imagenet-1k-val-sample   # Hub dataset id, or a local folder ($HF_TSEL_HOME/..., ./...)
      split: validation
      max_samples: 5000                        # stratified; default 5000

or just ``source_reference: my-org/imagenet-1k-val-sample`` (split ``train``). ``label_space: imagenet-1k``
says that the set's class names are WordNet ids (``n01532829``); its labels are then mapped to the
ImageNet-1k class index (timm's table), the index space of the models' own ImageNet heads. The bundled
zoos' ImageNet-1k models name :data:`IMAGENET_REFERENCE`: ``timm/mini-imagenet``, split ``test`` (5,000
ImageNet-1k validation images, 50 of each of 100 classes). The features are
extracted by :func:`hf_tsel.extract` with a fixed sampling seed, so they land in the feature
cache once per model and every later run, whatever its target, reuses them without loading the model
(:func:`hf_tsel.extraction.attach_source_references`).

Example:
    >>> reference = SourceReference.parse({"dataset": "my-org/imagenet-val-sample", "split": "validation"})
    >>> reference.describe()
    'my-org/imagenet-val-sample [validation], up to 5000 images'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from .errors import ZooError

__all__ = ["DEFAULT_REFERENCE_SAMPLES", "IMAGENET_REFERENCE", "LABEL_SPACES", "REFERENCE_SEED", "ReferenceFeatures",
           "SourceReference", "source_reference_of"]

DEFAULT_REFERENCE_SAMPLES = 5000  # the exact MST of 5000 x 2048 features takes seconds; ImageNet: 5 per class
REFERENCE_SEED = 0  # fixed, not the run's seed: one sample per model, shared by every target's run
LABEL_SPACES = ("imagenet-1k",)
IMAGENET_REFERENCE = {"dataset": "timm/mini-imagenet", "split": "test", "label_space": "imagenet-1k"}


@dataclass(frozen=True)
class SourceReference:
    """Where a model's source reference images are and how to sample them (the options of :func:`hf_tsel.extract`)."""

    dataset: str
    split: str = "train"
    config: str | None = None
    revision: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    samples_per_class: int | None = None
    max_samples: int | None = DEFAULT_REFERENCE_SAMPLES
    label_space: str | None = None  # "imagenet-1k": class names are WordNet ids, labels become ImageNet-1k indices

    @classmethod
    def parse(cls, raw: Any, *, where: str = "source_reference") -> SourceReference:
        """A reference from its zoo-file form (a dataset id, or a mapping of these fields); raises :class:`ZooError`."""
        if isinstance(raw, str):
            raw = {"dataset": raw}
        names = [f.name for f in fields(cls)]
        if not isinstance(raw, dict):
            raise ZooError(f"{where}: 'source_reference' must be a dataset id or a mapping with 'dataset', got {raw!r}")
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise ZooError(f"{where}: unknown source_reference field(s) {unknown}; valid fields are {names}")
        if not isinstance(raw.get("dataset"), str) or not raw["dataset"].strip():
            raise ZooError(f"{where}: source_reference needs 'dataset' (a Hub dataset id or a local dataset folder)")
        if raw.get("label_space") is not None and raw["label_space"] not in LABEL_SPACES:
            raise ZooError(f"{where}: unknown source_reference label_space {raw['label_space']!r}; use one of "
                           f"{list(LABEL_SPACES)} or leave it out")
        for key in ("split", "config", "revision", "image_column", "label_column"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                raise ZooError(f"{where}: source_reference {key!r} must be a string, got {raw[key]!r}")
        for key in ("samples_per_class", "max_samples"):
            value = raw.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
                raise ZooError(f"{where}: source_reference {key!r} must be an integer >= 2 or null, got {value!r}")
        return cls(**raw)

    def describe(self) -> str:
        """One readable line: dataset, split and sampling."""
        sampling = [f"{self.samples_per_class} per class"] if self.samples_per_class else []
        sampling += [f"up to {self.max_samples} images"] if self.max_samples else []
        return f"{self.dataset} [{self.split}]" + (", " + ", ".join(sampling) if sampling else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def source_classes(self, class_names: list[str]) -> np.ndarray:
        """The source class of each of the set's classes (index ``i``: ``class_names[i]``) in the ``label_space``;
        without one, the classes are their own indices.

        Example:
            >>> reference = SourceReference("timm/mini-imagenet", label_space="imagenet-1k")
            >>> reference.source_classes(["n01532829", "n01558993"]).tolist()  # house finch, robin
            [12, 15]
        """
        if self.label_space is None:
            return np.arange(len(class_names))
        from timm.data import ImageNetInfo

        index = {wnid: i for i, wnid in enumerate(ImageNetInfo().label_names())}
        unknown = [name for name in class_names if name not in index]
        if unknown:
            raise ZooError(f"its class name(s) {unknown[:5]} are not ImageNet-1k "
                           "WordNet ids (such as 'n01440764')",
                           fix="point label_column at the WordNet-id labels, or drop label_space: imagenet-1k.")
        return np.array([index[name] for name in class_names], dtype=np.int64)


def source_reference_of(entry: Any) -> SourceReference | None:
    """The parsed ``source_reference`` of a zoo entry, or ``None`` when it names none."""
    raw = getattr(entry, "source_reference", None)
    return None if raw is None else SourceReference.parse(raw, where=f"model {entry.name!r}")


@dataclass
class ReferenceFeatures:
    """A model's embeddings of its source reference sample, with the source class of each row."""

    features: torch.Tensor  # [N, D]
    labels: np.ndarray  # [N], source classes
    reference: SourceReference
    cache_key: str | None = None  # the feature-cache entry they come from (None without a cache)

    def as_dict(self) -> dict[str, Any]:
        return {**self.reference.to_dict(), "num_samples": int(len(self.labels)),
                "num_classes": int(len(np.unique(self.labels))), "cache_key": self.cache_key}

