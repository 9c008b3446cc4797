"""``extract``: sample a dataset once, then reuse the cached features of each model or load it and extract them."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .._version import __version__
from ..data import ImageDataset, load_image_dataset
from ..defaults import MAX_SEED
from ..errors import UserError
from ..features import (PRECISIONS, CachedFeatures, FeatureCache, effective_precision, extract_features,
                        make_accelerator)
from ..features.scheduling import shard_entries
from ..hub_access import current_commit
from ..zoo import ZooEntry
from .cache_writes import CacheWrites
from .coordination import Run, choose_parallel, load_everywhere, zoo_parallel
from .outcomes import Extraction, ExtractionEvent, MissingFeaturesError, ModelOutcome, failure_reason
from .resolution import resolve_models

__all__ = ["check_seed", "extract"]

logger = logging.getLogger(__name__)


def check_seed(seed: Any) -> None:
    """Refuse a seed that some later step could not take (before any work, not after all of it)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed {seed!r} is not a whole number from 0 to {MAX_SEED}",
                        fix="pass a smaller seed (numpy and scikit-learn take seeds below 2**32).")


def _is_current(entry: ZooEntry, cached: CachedFeatures) -> bool:
    """Whether ``cached`` was extracted from the commit the entry's revision names now (unknown counts as yes).

    Cached features are reused only for that commit, so a branch that moved on the Hub (``main``
    got new weights) is re-extracted even though the local cache still points at the old commit.
    """
    current = current_commit(entry.hub_id, entry.revision)
    return current is None or current == cached.manifest.get("model_revision")


def _features_for(entry: ZooEntry, run: Run) -> ModelOutcome:
    """Cached features of ``entry`` if complete and current; otherwise load the model and extract."""
    key, data, accelerator = run.key(entry), run.data, run.accelerator
    if run.cache is not None:
        cached = run.cache.load(key)
        # only the deciding process asks the Hub for the current revision: one request per model, not one per GPU
        if run.main_decides(lambda: cached is not None and _is_current(entry, cached)):
            run.emit("cached", f"[{entry.name}] features cached, model not loaded", model=entry.name)
            return run.outcome(entry, "cached", cached)
    start = time.perf_counter()
    backbone, error = load_everywhere(entry, run)
    if error is not None:
        run.emit("failed", f"[{entry.name}] skipped: {error}", model=entry.name)
        return ModelOutcome(entry, "failed", error=error)
    revision = backbone.resolved_revision
    done = run.cache.load_chunks(key, revision=revision) if run.cache is not None else {}

    def checkpoint(index: int, features: torch.Tensor, positions: np.ndarray, logits: torch.Tensor | None) -> None:
        run.writes("save_chunk", key, index, features, positions, logits, revision=revision)

    resuming = f" (resuming after {len(done)} cached chunk(s))" if done else ""
    run.emit("extracting", f"[{entry.name}] extracting features{resuming}", model=entry.name, total=data.num_samples)
    result = extract_features(backbone, data, accelerator=accelerator, batch_size=run.batch_size,
                              num_workers=run.num_workers, chunk_size=run.chunk_size, done_chunks=done,
                              on_chunk=checkpoint, split_images=run.split_images,
                              on_batch=lambda n: run.emit("progress", model=entry.name, advance=n))
    if result.num_corrupt:
        warnings.warn(_undecodable_note(data, result.positions), stacklevel=2)
    manifest = {"key": key, "model": entry.name, "model_id": entry.hub_id, "model_revision": revision,
                "loader": entry.loader, "pooling": entry.pooling, "preprocessing": backbone.preprocessing,
                "details": backbone.details,  # e.g. preprocessing fixes applied by the loader
                "dataset": data.name, "config": data.config, "split": data.split, "dataset_fingerprint": data.fingerprint,
                "sample_key": data.sample_key, "num_corrupt": result.num_corrupt, "tool_version": __version__,
                "precision": run.precision, "weights_sha256": run.digests.get(entry.hub_id)}
    features = CachedFeatures(result.features, result.positions, result.source_logits, manifest)
    if accelerator.is_main_process or not run.split_images:
        run.writes("save", key, features)
    if run.split_images:
        accelerator.wait_for_everyone()
    del backbone
    seconds = time.perf_counter() - start
    run.emit("extracted", f"[{entry.name}] {len(result.positions)} images in {seconds:.1f} s", model=entry.name)
    return run.outcome(entry, "resumed" if result.chunks_reused else "extracted", features,
                       extraction_seconds=seconds, data_seconds=result.data_seconds,
                       forward_seconds=result.forward_seconds, num_corrupt=result.num_corrupt)


def _undecodable_note(data: ImageDataset, decoded: np.ndarray, shown: int = 5) -> str:
    """Which images could not be decoded (the first few by row and file), and how to see why."""
    skipped = np.setdiff1d(np.arange(data.num_samples), decoded)
    named = ", ".join(data.describe(p) for p in skipped[:shown]) + (", ..." if len(skipped) > shown else "")
    return (f"{len(skipped)} of {data.num_samples} images could not be decoded and were skipped: {named}; "
            f"the ranking uses the other {data.num_samples - len(skipped)} (run with -v to see why each failed)")


def _guarded_features_for(entry: ZooEntry, run: Run) -> ModelOutcome:
    """:func:`_features_for`, or a failed outcome with a one-line reason: one bad model must not end a zoo run."""
    try:
        return _features_for(entry, run)
    except Exception as exc:  # noqa: BLE001 (any resolve/download/load/forward failure; Ctrl-C still stops the run)
        logger.debug("model %s failed", entry.name, exc_info=exc)
        reason = failure_reason(exc)
        run.emit("failed", f"[{entry.name}] failed: {reason}", model=entry.name)
        return ModelOutcome(entry, "failed", error=reason)


def _admitted_by(admit: Callable[[ZooEntry], bool]) -> Callable[[ZooEntry, Run], ModelOutcome]:
    """:func:`_guarded_features_for` for the models ``admit`` lets start; the others are left out, never loaded."""
    def features_for(entry: ZooEntry, run: Run) -> ModelOutcome:
        if not run.main_decides(lambda: admit(entry)):
            return ModelOutcome(entry, "left_out", error="left out: the time budget would not cover it")
        return _guarded_features_for(entry, run)

    return features_for


def _cached_any_precision(entry: ZooEntry, run: Run, precisions: Sequence[str]) -> CachedFeatures | None:
    """The first cached entry of ``entry`` among ``precisions`` (this run's first)."""
    for precision in dict.fromkeys([run.precision, *precisions]):
        cached = run.cache.load(run.key(entry, precision))
        if cached is not None:
            return cached
    return None


def _from_cache(entries: Sequence[ZooEntry], run: Run, fix: str | None, precision: str) -> list[ModelOutcome]:
    """Every entry's cached features, whatever revision they were extracted from; raises if any is missing.

    With ``precision="auto"`` features of any precision will do (a GPU machine extracts in bf16, the CPU
    machine scoring them would run fp32); an explicit precision takes only its own.
    """
    accepted = [p for p in PRECISIONS if p != "auto"] if precision == "auto" else [run.precision]
    outcomes = [run.outcome(entry, "cached", _cached_any_precision(entry, run, accepted)) for entry in entries]
    missing = [o.entry.name for o in outcomes if o.features is None]
    if missing:
        raise MissingFeaturesError(missing, run.cache.root, fix)
    for o in outcomes:
        run.emit("cached", f"[{o.entry.name}] features cached, model not loaded", model=o.entry.name)
    return outcomes


def extract(dataset: Any, *, zoo: str | Path | None = None, models: Sequence[Any] | None = None,
            split: str = "train", config: str | None = None, revision: str | None = None,
            image_column: str | None = None, label_column: str | None = None, samples_per_class: int | None = None,
            max_samples: int | None = None, seed: int = 0, batch_size: int = 64, num_workers: int = 0,
            device: str | None = None, precision: str = "auto", cache_dir: str | Path | None = None,
            use_cache: bool = True, from_cache: bool = False, allow_pickle: bool = False,
            trust_remote_code: bool = False, loader: str | None = None, chunk_size: int = 512,
            parallel: str = "auto", shard: tuple[int, int] | None = None,
            on_event: Callable[[ExtractionEvent], None] | None = None,
            missing_fix: str | None = None, admit: Callable[[ZooEntry], bool] | None = None) -> Extraction:
    """Sample ``dataset`` once and return each model's frozen features, extracting only what the cache lacks.

    Features land in the feature cache (one entry per model and dataset sample), where
    :func:`hf_tsel.rank` and a later ``extract`` find them. Models that fail to load are
    reported (status ``"failed"`` with an ``error``) and skipped.

    Args:
        dataset: Hub id, local folder, or ``datasets.Dataset``; see :func:`hf_tsel.data.load_image_dataset`.
        zoo, models, loader: bundled zoo name or YAML path (default :data:`hf_tsel.defaults.DEFAULT_ZOO`),
            or model names / Hub ids (looked up in ``zoo`` first) or :class:`hf_tsel.zoo.ZooEntry` objects.
        split, config, revision, image_column, label_column: which data to read.
        samples_per_class, max_samples, seed: stratified sampling of the split.
        batch_size, num_workers, chunk_size: images per forward pass, DataLoader workers, images
            per checkpointed chunk.
        device, precision: ``"cpu"``/``"cuda"`` (default: CUDA if available) and ``auto|fp32|bf16|fp16``.
        cache_dir, use_cache: feature cache folder (default ``$HF_TSEL_HOME/features``) or no cache.
        from_cache: load no model; raise :class:`MissingFeaturesError` if any model has no cached
            features (``missing_fix`` overrides the advice it gives).
        allow_pickle, trust_remote_code: opt-ins passed to the model loaders.
        parallel: under a multi-process launch, ``"zoo"`` (whole models per process), ``"images"``
            (each model's images split across processes) or ``"auto"`` (zoo when it has more
            models than there are processes and the cache is on).
        shard: ``(i, n)``, 1-based: only the i-th of n round-robin shares of the zoo (for several machines).
        on_event: called with an :class:`ExtractionEvent` at each step (progress display).
        admit: asked before each model whether it may start (a time budget, :mod:`hf_tsel.funnel`); a model it
            refuses is not loaded and gets status ``"left_out"``.

    Returns:
        An :class:`Extraction`: ``result[name]`` is a :class:`ModelOutcome` with ``features``
        (:class:`hf_tsel.features.CachedFeatures`: features, positions, source logits, manifest),
        ``labels`` and ``status``; ``result.data`` is the sample. Under a multi-process launch only
        the main process's result holds every model's features.

    Example:
        >>> import hf_tsel
        >>> zoo = hf_tsel.extract("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
        >>> {name: o.features.features.shape[1] for name, o in zoo.items() if o.features}  # doctest: +SKIP
    """
    check_seed(seed)
    entries = resolve_models(zoo, models, loader=loader)
    if shard is not None:
        entries = shard_entries(entries, *shard)
    if from_cache and not use_cache:
        raise UserError("from_cache reads the feature cache, so it cannot be combined with use_cache=False (--no-cache)")
    cache = FeatureCache(cache_dir) if use_cache else None
    if cache is not None and not from_cache:
        cache.check_writable()
    accelerator = make_accelerator(device, precision)
    mode = choose_parallel(parallel, len(entries), accelerator.num_processes, cache is not None)
    tick = time.perf_counter()
    with accelerator.main_process_first():  # one process fills the datasets cache, the others read it
        data = load_image_dataset(dataset, split=split, config=config, revision=revision, image_column=image_column,
                                  label_column=label_column, samples_per_class=samples_per_class,
                                  max_samples=max_samples, seed=seed)
    seconds = {"data": time.perf_counter() - tick}
    run = Run(data, cache, CacheWrites(cache), accelerator, {"allow_pickle": allow_pickle,
               "trust_remote_code": trust_remote_code}, batch_size, num_workers, chunk_size, on_event,
               split_images=mode == "images", precision=effective_precision(accelerator))
    run.emit("dataset", f"{data.name} [{data.split}]: {data.num_samples} samples, {data.num_classes} classes; "
                        f"{len(entries)} model(s)" + (f", {mode}-parallel over {accelerator.num_processes} processes"
                                                      if accelerator.num_processes > 1 else ""))
    tick = time.perf_counter()
    features_for = _guarded_features_for if admit is None else _admitted_by(admit)
    if from_cache:
        outcomes = _from_cache(entries, run, missing_fix, precision)
    elif mode == "zoo":
        outcomes = zoo_parallel(entries, run, features_for)
    else:
        outcomes = [features_for(entry, run) for entry in entries]
    seconds["extraction"] = time.perf_counter() - tick
    return Extraction(data, {o.entry.name: o for o in outcomes}, parallel=mode,
                      num_processes=accelerator.num_processes, device=accelerator.device,
                      cache_dir=None if cache is None else cache.root, cache_error=run.writes.error, seconds=seconds,
                      is_main_process=accelerator.is_main_process)
