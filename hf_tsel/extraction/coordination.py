"""Multi-process coordination: who extracts what under ``accelerate launch``, and how the processes agree.

In an ``images`` run every process works on the same model (each on its share of the images), so
every branch must be taken by all of them together (:attr:`Run.collective`); in a ``zoo`` run each
process extracts whole models of its own and the features meet in the shared feature cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from accelerate.utils import broadcast_object_list, gather_object

from ..backbones import load_backbone
from ..data import ImageDataset
from ..errors import UserError
from ..features import CachedFeatures, FeatureCache, entry_key
from ..features.scheduling import balanced_order, weight_bytes
from ..zoo import ZooEntry
from .cache_writes import CacheWrites
from .outcomes import ExtractionEvent, ModelOutcome, failure_reason

__all__ = ["PARALLEL_MODES", "Run", "choose_parallel", "load_everywhere", "zoo_parallel"]

logger = logging.getLogger(__name__)

PARALLEL_MODES = ("auto", "zoo", "images")


@dataclass
class Run:
    """What every model's extraction in one :func:`extract` call shares."""

    data: ImageDataset
    cache: FeatureCache | None
    writes: CacheWrites
    accelerator: Any
    load_options: dict
    batch_size: int
    num_workers: int
    chunk_size: int
    on_event: Callable[[ExtractionEvent], None] | None
    split_images: bool  # False in a zoo-parallel run: this process extracts its models alone
    precision: str = "fp32"  # what the forward passes run in (effective_precision), part of every key
    digests: dict[str, str | None] = field(default_factory=dict)  # local model path -> content digest

    def emit(self, kind: str, message: str = "", **details: Any) -> None:
        if message:
            logger.info(message)
        # with split images all processes do the same work; only the main one reports it
        if self.on_event is not None and (self.accelerator.is_main_process or not self.split_images):
            self.on_event(ExtractionEvent(kind, message, process_index=self.accelerator.process_index, **details))

    def key(self, entry: ZooEntry, precision: str | None = None) -> str:
        """The cache key of ``entry``'s features on this sample, at ``precision`` (default: this run's)."""
        return entry_key(entry, self.data.sample_key, precision=precision or self.precision, digests=self.digests)

    @property
    def collective(self) -> bool:
        """Every process works on the same model, so all must take the same branch (or the collectives hang)."""
        return self.split_images and self.accelerator.num_processes > 1

    def main_decides(self, decide: Callable[[], Any]) -> Any:
        """``decide()``; in a collective run the main process alone calls it and every process gets its answer."""
        if not self.collective:
            return decide()
        box = [decide() if self.accelerator.is_main_process else None]
        broadcast_object_list(box)
        return box[0]

    def any_error(self, error: str | None) -> str | None:
        """The first error any process of a collective run hit (``None`` if none did)."""
        if not self.collective:
            return error
        return next((e for e in gather_object([error]) if e), None)

    def outcome(self, entry: ZooEntry, status: str, features: CachedFeatures | None = None, **details: Any) -> ModelOutcome:
        labels = None if features is None else self.data.labels[features.positions]
        revision = None if features is None else features.manifest.get("model_revision")
        return ModelOutcome(entry, status, revision=revision, features=features, labels=labels, **details)


def load_everywhere(entry: ZooEntry, run: Run) -> tuple[Any, str | None]:
    """The backbone, or why it could not be loaded; in a collective run the same answer in every process.

    There all processes load the same model: the main one first (it downloads), then the others
    read its files. A failure in any process fails the model in all of them, so none is left
    waiting at a barrier the others never reach.
    """
    backbone, error = None, None
    if run.collective and not run.accelerator.is_main_process:
        run.accelerator.wait_for_everyone()
    try:
        backbone = load_backbone(entry, device=run.accelerator.device, **run.load_options)
    except Exception as exc:  # noqa: BLE001 (resolve/download/load: any failure fails this model only)
        logger.debug("model %s could not be loaded", entry.name, exc_info=exc)
        error = failure_reason(exc)
    if run.collective and run.accelerator.is_main_process:
        run.accelerator.wait_for_everyone()
    error = run.any_error(error)
    return (None if error else backbone), error


def zoo_parallel(entries: Sequence[ZooEntry], run: Run,
                 features_for: Callable[[ZooEntry, Run], ModelOutcome]) -> list[ModelOutcome]:
    """Whole models split across the processes, each extracted by ``features_for``; after a barrier the main
    process reads all features from the cache."""
    accelerator = run.accelerator
    # sizes may differ between processes (one saw the Hub, one timed out): the main process decides for all
    sizes = [[weight_bytes(e) for e in entries] if accelerator.is_main_process else None]
    broadcast_object_list(sizes)
    order = balanced_order(list(entries), sizes[0], accelerator.num_processes)
    with accelerator.split_between_processes(order) as mine:
        local = {e.name: features_for(e, run) for e in mine}
    # Only what happened travels between processes; features go through the shared cache.
    reports = gather_object([replace(o, features=None, labels=None) for o in local.values()])
    accelerator.wait_for_everyone()
    by_name = {o.entry.name: o for o in reports}
    outcomes = []
    for entry in entries:
        report = by_name[entry.name]
        if entry.name in local:
            outcomes.append(local[entry.name])
        elif report.status in ("failed", "left_out") or not accelerator.is_main_process:
            outcomes.append(report)
        else:
            features = run.cache.load(run.key(entry))
            if features is None:
                report = replace(report, status="failed",
                                 error=f"another process extracted it, but its features did not reach {run.cache.root} "
                                       "(a cache write failed, or the processes do not share that folder: with several "
                                       "machines --cache-dir must be on storage they all mount)")
            outcomes.append(replace(report, features=features,
                                    labels=None if features is None else run.data.labels[features.positions]))
    return outcomes


def choose_parallel(parallel: str, num_models: int, num_processes: int, has_cache: bool) -> str:
    """``"zoo"`` or ``"images"``: ``auto`` splits the zoo when it has more models than there are processes."""
    if parallel not in PARALLEL_MODES:
        raise UserError(f"unknown parallel mode {parallel!r}; use one of {', '.join(PARALLEL_MODES)}")
    if parallel == "zoo" and not has_cache:
        raise UserError("zoo-parallel extraction passes features through the feature cache; drop --no-cache "
                        "(use_cache=False) or use --parallel images")
    if parallel == "auto":
        return "zoo" if has_cache and num_processes > 1 and num_models > num_processes else "images"
    return parallel
