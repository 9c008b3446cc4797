"""Feature extraction as a public step: sample a dataset once, then extract (or reuse cached) features per model.

One process extracts model after model. Under ``accelerate launch`` (or any ``torch.distributed``
launch) the work is shared in one of two ways:

* ``images``: every model in turn, each chunk of images split across the processes (the only
  choice when the zoo has no more models than there are processes);
* ``zoo``: whole models split across the processes (largest first, balanced by weight size),
  each process extracting its models over all images into the shared feature cache; the main
  process then reads every model's features from that cache.

Progress is reported through ``on_event`` (:class:`ExtractionEvent`); nothing is printed here.

Example:
    >>> import hf_tsel
    >>> zoo = hf_tsel.extract("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
    >>> outcome = zoo["resnet50-tv"]  # doctest: +SKIP
    >>> outcome.status, outcome.features.features.shape, outcome.labels.shape  # doctest: +SKIP
    ('extracted', torch.Size([200, 2048]), (200,))
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch

from ._version import __version__
from .data import ImageDataset, load_image_dataset
from .defaults import DEFAULT_ZOO, MAX_SEED
from .errors import CacheError, HfTselError, UserError
from .features import (PRECISIONS, CachedFeatures, FeatureCache, effective_precision, entry_key, extract_features,
                       make_accelerator)
from .features.scheduling import balanced_order, shard_entries, weight_bytes
from .hub_access import PROBE_SECONDS, hub_reachable
from .source_reference import REFERENCE_SEED, ReferenceFeatures, SourceReference, source_reference_of

__all__ = ["Extraction", "ExtractionEvent", "MissingFeaturesError", "ModelOutcome", "PARALLEL_MODES",
           "attach_source_references", "check_seed", "choose_parallel", "extract", "resolve_models"]

logger = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")
PARALLEL_MODES = ("auto", "zoo", "images")
_MISSING_REFERENCE_FIX = ("run once without --from-cache (from_cache=False): the source reference features are "
                          "extracted then and cached for every later run")


@dataclass
class ModelOutcome:
    """What happened to one model: its features (with the labels of their samples), or why there are none."""

    entry: Any  # ZooEntry
    status: str  # "cached" | "extracted" | "resumed" | "failed"
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


def resolve_models(zoo: str | Path | None = None, models: Sequence[Any] | None = None, *,
                   loader: str | None = None) -> list[Any]:
    """Zoo entries to extract: the whole ``zoo``, or the ``models`` named (or given as :class:`hf_tsel.zoo.ZooEntry`).

    A model name is looked up in ``zoo`` (default: the default zoo) by entry name or hub id, so it
    keeps that entry's loader, pooling and preprocessing; other ids become ad-hoc entries.
    """
    from .zoo import ZooEntry, find_model, load_zoo

    if not models:
        return load_zoo(zoo or DEFAULT_ZOO)
    zoo_entries = [] if all(isinstance(m, ZooEntry) for m in models) else load_zoo(zoo or DEFAULT_ZOO)
    entries = [m if isinstance(m, ZooEntry) else find_model(m, zoo_entries, zoo=zoo, loader=loader) for m in models]
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"model(s) {duplicates} were given twice; name each model once")
    return entries


def check_seed(seed: Any) -> None:
    """Refuse a seed that some later step could not take (before any work, not after all of it)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"seed {seed!r} is not a whole number from 0 to {MAX_SEED}",
                        fix="pass a smaller seed (numpy and scikit-learn take seeds below 2**32).")


def _current_revision(entry: Any) -> str | None:
    """The commit the entry's revision names now: asked of the Hub when it answers, else the local Hub cache's ref.

    Cached features are reused only for that commit, so a branch that moved on the Hub (``main``
    got new weights) is re-extracted even though the local cache still points at the old commit.
    """
    if _SHA.match(entry.revision or ""):
        return entry.revision
    if entry.hub_id.count("/") != 1 or Path(entry.hub_id).exists() or ":" in entry.hub_id:
        return None
    from huggingface_hub import HfApi, constants

    if hub_reachable():
        try:
            return HfApi().model_info(entry.hub_id, revision=entry.revision, timeout=PROBE_SECONDS).sha
        except Exception as exc:  # noqa: BLE001 (gated, missing, network: the loader reports it if it must load)
            logger.debug("could not ask the Hub for the revision of %s: %s", entry.hub_id, exc)
    ref = Path(constants.HF_HUB_CACHE) / f"models--{entry.hub_id.replace('/', '--')}" / "refs" / entry.revision
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _is_current(entry: Any, cached: CachedFeatures) -> bool:
    """Whether ``cached`` was extracted from the commit the entry's revision names now (unknown counts as yes)."""
    current = _current_revision(entry)
    return current is None or current == cached.manifest.get("model_revision")


class _CacheWrites:
    """Cache writes that, on a full disk or lost permission, warn once and stop: the run goes on in memory."""

    def __init__(self, cache: FeatureCache | None):
        self.cache, self.error = cache, None

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.cache is None or self.error:
            return
        try:
            getattr(self.cache, method)(*args, **kwargs)
        except CacheError as exc:
            self.error = str(exc)
            warnings.warn(f"{exc} The run goes on without caching.", stacklevel=3)


@dataclass
class _Run:
    """What every model's extraction in one :func:`extract` call shares."""

    data: ImageDataset
    cache: FeatureCache | None
    writes: _CacheWrites
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

    def key(self, entry: Any, precision: str | None = None) -> str:
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
        from accelerate.utils import broadcast_object_list

        box = [decide() if self.accelerator.is_main_process else None]
        broadcast_object_list(box)
        return box[0]

    def any_error(self, error: str | None) -> str | None:
        """The first error any process of a collective run hit (``None`` if none did)."""
        if not self.collective:
            return error
        from accelerate.utils import gather_object

        return next((e for e in gather_object([error]) if e), None)

    def outcome(self, entry: Any, status: str, features: CachedFeatures | None = None, **details: Any) -> ModelOutcome:
        labels = None if features is None else self.data.labels[features.positions]
        revision = None if features is None else features.manifest.get("model_revision")
        return ModelOutcome(entry, status, revision=revision, features=features, labels=labels, **details)


def _features_for(entry: Any, run: _Run) -> ModelOutcome:
    """Cached features of ``entry`` if complete and current; otherwise load the model and extract."""
    key, data, accelerator = run.key(entry), run.data, run.accelerator
    if run.cache is not None:
        cached = run.cache.load(key)
        # only the deciding process asks the Hub for the current revision: one request per model, not one per GPU
        if run.main_decides(lambda: cached is not None and _is_current(entry, cached)):
            run.emit("cached", f"[{entry.name}] features cached, model not loaded", model=entry.name)
            return run.outcome(entry, "cached", cached)
    start = time.perf_counter()
    backbone, error = _load_everywhere(entry, run)
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


def _load_everywhere(entry: Any, run: _Run) -> tuple[Any, str | None]:
    """The backbone, or why it could not be loaded; in a collective run the same answer in every process.

    There all processes load the same model: the main one first (it downloads), then the others
    read its files. A failure in any process fails the model in all of them, so none is left
    waiting at a barrier the others never reach.
    """
    from .backbones import load_backbone

    backbone, error = None, None
    if run.collective and not run.accelerator.is_main_process:
        run.accelerator.wait_for_everyone()
    try:
        backbone = load_backbone(entry, device=run.accelerator.device, **run.load_options)
    except Exception as exc:  # noqa: BLE001 (resolve/download/load: any failure fails this model only)
        logger.debug("model %s could not be loaded", entry.name, exc_info=exc)
        error = _reason(exc)
    if run.collective and run.accelerator.is_main_process:
        run.accelerator.wait_for_everyone()
    error = run.any_error(error)
    return (None if error else backbone), error


def _reason(exc: Exception) -> str:
    """One line saying why a model failed (our errors carry their own wording)."""
    return " ".join((str(exc) if isinstance(exc, HfTselError) else f"{type(exc).__name__}: {exc}").split())


def _guarded_features_for(entry: Any, run: _Run) -> ModelOutcome:
    """:func:`_features_for`, or a failed outcome with a one-line reason: one bad model must not end a zoo run."""
    try:
        return _features_for(entry, run)
    except Exception as exc:  # noqa: BLE001 (any resolve/download/load/forward failure; Ctrl-C still stops the run)
        logger.debug("model %s failed", entry.name, exc_info=exc)
        reason = _reason(exc)
        run.emit("failed", f"[{entry.name}] failed: {reason}", model=entry.name)
        return ModelOutcome(entry, "failed", error=reason)


def _cached_any_precision(entry: Any, run: _Run, precisions: Sequence[str]) -> CachedFeatures | None:
    """The first cached entry of ``entry`` among ``precisions`` (this run's first)."""
    for precision in dict.fromkeys([run.precision, *precisions]):
        cached = run.cache.load(run.key(entry, precision))
        if cached is not None:
            return cached
    return None


def _from_cache(entries: Sequence[Any], run: _Run, fix: str | None, precision: str) -> list[ModelOutcome]:
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


def _zoo_parallel(entries: Sequence[Any], run: _Run) -> list[ModelOutcome]:
    """Whole models split across the processes; after a barrier the main process reads all features from the cache."""
    from accelerate.utils import broadcast_object_list, gather_object

    accelerator = run.accelerator
    # sizes may differ between processes (one saw the Hub, one timed out): the main process decides for all
    sizes = [[weight_bytes(e) for e in entries] if accelerator.is_main_process else None]
    broadcast_object_list(sizes)
    order = balanced_order(list(entries), sizes[0], accelerator.num_processes)
    with accelerator.split_between_processes(order) as mine:
        local = {e.name: _guarded_features_for(e, run) for e in mine}
    # Only what happened travels between processes; features go through the shared cache.
    reports = gather_object([replace(o, features=None, labels=None) for o in local.values()])
    accelerator.wait_for_everyone()
    by_name = {o.entry.name: o for o in reports}
    outcomes = []
    for entry in entries:
        report = by_name[entry.name]
        if entry.name in local:
            outcomes.append(local[entry.name])
        elif report.status == "failed" or not accelerator.is_main_process:
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


def extract(dataset: Any, *, zoo: str | Path | None = None, models: Sequence[Any] | None = None,
            split: str = "train", config: str | None = None, revision: str | None = None,
            image_column: str | None = None, label_column: str | None = None, samples_per_class: int | None = None,
            max_samples: int | None = None, seed: int = 0, batch_size: int = 64, num_workers: int = 0,
            device: str | None = None, precision: str = "auto", cache_dir: str | Path | None = None,
            use_cache: bool = True, from_cache: bool = False, allow_pickle: bool = False,
            trust_remote_code: bool = False, loader: str | None = None, chunk_size: int = 512,
            parallel: str = "auto", shard: tuple[int, int] | None = None,
            on_event: Callable[[ExtractionEvent], None] | None = None,
            missing_fix: str | None = None) -> Extraction:
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
    run = _Run(data, cache, _CacheWrites(cache), accelerator, {"allow_pickle": allow_pickle,
               "trust_remote_code": trust_remote_code}, batch_size, num_workers, chunk_size, on_event,
               split_images=mode == "images", precision=effective_precision(accelerator))
    run.emit("dataset", f"{data.name} [{data.split}]: {data.num_samples} samples, {data.num_classes} classes; "
                        f"{len(entries)} model(s)" + (f", {mode}-parallel over {accelerator.num_processes} processes"
                                                      if accelerator.num_processes > 1 else ""))
    tick = time.perf_counter()
    if from_cache:
        outcomes = _from_cache(entries, run, missing_fix, precision)
    elif mode == "zoo":
        outcomes = _zoo_parallel(entries, run)
    else:
        outcomes = [_guarded_features_for(entry, run) for entry in entries]
    seconds["extraction"] = time.perf_counter() - tick
    return Extraction(data, {o.entry.name: o for o in outcomes}, parallel=mode,
                      num_processes=accelerator.num_processes, device=accelerator.device,
                      cache_dir=None if cache is None else cache.root, cache_error=run.writes.error, seconds=seconds,
                      is_main_process=accelerator.is_main_process)


def attach_source_references(outcomes: Sequence[Any], *, from_cache: bool = False, **extract_options: Any) -> None:
    """Set ``reference`` (or ``reference_error``) on every extracted outcome whose entry names a source reference.

    Models sharing a reference are extracted in one :func:`hf_tsel.extract` call (the dataset is read
    once). A reference that cannot be read, or a model that fails on it, only costs that model its
    reference-based scores. ``extract_options`` are passed to :func:`hf_tsel.extract` (device,
    cache folder, batch size, ...).
    """
    report = extract_options.pop("on_event", None)
    if report is not None:  # say which dataset line is the reference set, not a second target
        extract_options["on_event"] = lambda event: report(
            replace(event, message=f"source reference set: {event.message}") if event.kind == "dataset" else event)
    groups: dict[SourceReference, list[Any]] = {}
    for outcome in outcomes:
        # by status, not by features: in a zoo-parallel run only the main process holds every model's features,
        # yet all processes must make the same extract() calls
        reference = source_reference_of(outcome.entry) if outcome.status != "failed" else None
        if reference is not None:
            groups.setdefault(reference, []).append(outcome)
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
        except HfTselError as exc:
            for outcome in group:
                outcome.reference_error = f"source reference {reference.describe()}: {exc}"
            continue
        for outcome in group:
            done = result[outcome.entry.name]
            if done.features is None:
                outcome.reference_error = f"source reference {reference.describe()}: {done.error}"
            else:
                outcome.reference = ReferenceFeatures(done.features.features, done.labels, reference,
                                                      done.features.manifest.get("key"))

