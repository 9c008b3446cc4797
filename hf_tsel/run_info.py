"""What a ranking run records about itself: :class:`RunInfo`, built once by :func:`hf_tsel.rank` (``df.attrs["run"]``).

It crosses from the ranking to whatever shows or stores the results (the CLI table, results files, the Hub
push), so it is frozen, typed and JSON-ready (:meth:`RunInfo.as_dict`); it reads like a mapping too
(``run["models"]``, ``run.get("funnel")``), the form the results files store.

Example:
    >>> run = RunInfo.of({"dataset": "cifar10", "split": "test", "num_samples": 200})
    >>> run.dataset, run["split"], run.get("funnel")
    ('cifar10', 'test', None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

__all__ = ["RunInfo"]


@dataclass(frozen=True)
class RunInfo(Mapping):
    """Metadata of one ranking run: the data, the models' outcomes, the stages' seconds, the answer."""

    dataset: str = ""
    config: str | None = None
    split: str = ""
    dataset_revision: str | None = None
    dataset_fingerprint: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    num_samples: int | None = None
    num_classes: int | None = None
    class_names: list[str] = field(default_factory=list)
    seed: int | None = None
    zoo: str | None = None
    zoo_query: str | None = None  # the Hub search behind a "hub:QUERY" zoo
    metrics: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)  # ModelOutcome.as_dict() of every model
    run_id: str | None = None
    tool_version: str | None = None
    timestamp: str | None = None
    hardware: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    cache_dir: str | None = None
    cache_error: str | None = None  # why the feature cache stopped being written, if it did
    parallel: str | None = None
    num_processes: int = 1
    recommendation: dict[str, Any] | None = None  # the answer line, its members and warnings
    funnel: dict[str, Any] | None = None  # a time budget's report: models left out, cost to finish
    race: dict[str, Any] | None = None  # the --confirm race's outcome

    @classmethod
    def of(cls, value: Mapping[str, Any] | None) -> RunInfo | None:
        """``value`` as a :class:`RunInfo` (a results file's ``run`` mapping, or one already); None stays None."""
        if value is None or isinstance(value, RunInfo):
            return value
        return cls(**{f.name: value[f.name] for f in fields(cls) if f.name in value})

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping written next to the results (``.run.json``, the ``run`` key of ``.json`` files)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        if key not in _FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __len__(self) -> int:
        return len(_FIELDS)


_FIELDS = tuple(f.name for f in fields(RunInfo))
