"""Rank a zoo of backbones on a dataset: sample -> extract (or reuse cached) features -> score -> table.

Example:
    >>> import hf_tsel
    >>> df = hf_tsel.rank("uoft-cs/cifar10", split="test", samples_per_class=20)  # doctest: +SKIP
    >>> df[df.metric == "logme"].sort_values("rank")[["model", "score"]]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from . import __version__
from .errors import HfTselError, UserError
from .data import ImageDataset, load_image_dataset
from .defaults import DEFAULT_METRICS, DEFAULT_N_BOOT, DEFAULT_ZOO
from .features import CacheError, CachedFeatures, FeatureCache, cache_key, extract_features, make_accelerator, model_spec
from .hardware import describe_hardware
from .results import RESULT_FIELDS, add_ranks, empty_record, validate_results

__all__ = ["DEFAULT_METRICS", "DEFAULT_ZOO", "ModelOutcome", "resolve_metrics", "resolve_models", "rank",
           "score_models"]

logger = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class ModelOutcome:
    """What happened to one model in a run."""

    entry: Any  # ZooEntry
    status: str  # "cached" | "extracted" | "resumed" | "failed"
    revision: str | None = None
    features: CachedFeatures | None = None
    error: str | None = None
    extraction_seconds: float = 0.0
    data_seconds: float = 0.0
    forward_seconds: float = 0.0
    num_corrupt: int = 0

    def as_dict(self) -> dict[str, Any]:
        has_logits = self.features is not None and self.features.source_logits is not None
        return {"name": self.entry.name, "model_id": self.entry.hub_id, "revision": self.revision,
                "status": self.status, "error": self.error, "extraction_seconds": round(self.extraction_seconds, 3),
                "data_seconds": round(self.data_seconds, 3), "forward_seconds": round(self.forward_seconds, 3),
                "num_corrupt": self.num_corrupt, "has_source_logits": has_logits,
                "details": self.features.manifest.get("details", {}) if self.features is not None else {},
                "feature_dim": None if self.features is None else int(self.features.features.shape[1])}


def resolve_metrics(names: Iterable[str] | str | None) -> list[Any]:
    """Registry specs of the requested metric names (default: :data:`DEFAULT_METRICS`); unknown names raise."""
    from .metrics import MetricInputError, get_metric

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


def _checked_metric_params(specs: Sequence[Any], metric_params: dict[str, dict] | None) -> dict[str, dict]:
    """``metric_params`` keyed by registry name, checked before any work (a bad one must not become a NaN score)."""
    from .metrics import MetricInputError, check_parameters, get_metric

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


def resolve_models(zoo: str | Path | None = None, models: Sequence[str] | None = None, *,
                   loader: str | None = None) -> list[Any]:
    """Zoo entries to rank: the whole ``zoo``, or the ``models`` named.

    A model name is looked up in ``zoo`` (default: the default zoo) by entry name or hub id, so it
    keeps that entry's loader, pooling and preprocessing; other ids become ad-hoc entries.
    """
    from .zoo import find_model, load_zoo

    if not models:
        return load_zoo(zoo or DEFAULT_ZOO)
    zoo_entries = load_zoo(zoo or DEFAULT_ZOO)
    entries = [find_model(m, zoo_entries, zoo=zoo, loader=loader) for m in models]
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"model(s) {duplicates} were given twice; name each model once")
    return entries


def _local_hub_revision(entry: Any) -> str | None:
    """The commit the local Hub cache maps the entry's revision to (no network), if known."""
    if _SHA.match(entry.revision or ""):
        return entry.revision
    if entry.hub_id.count("/") != 1 or Path(entry.hub_id).exists() or ":" in entry.hub_id:
        return None
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"models--{entry.hub_id.replace('/', '--')}" / "refs" / entry.revision
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class _Progress:
    """Rich progress bars on stderr (or silence); one bar per extracted model."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)

    def say(self, message: str) -> None:
        logger.info(message)
        if self.enabled:
            self.console.print(message, highlight=False, markup=False)

    def bar(self, description: str, total: int) -> Any:
        if not self.enabled:
            return _NoBar()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=self.console, transient=True)
        return _Bar(progress, description, total)


class _NoBar:
    def __enter__(self) -> Callable[[int], None]:
        return lambda n: None

    def __exit__(self, *exc: Any) -> None:
        return None


class _Bar:
    def __init__(self, progress: Any, description: str, total: int):
        self.progress, self.description, self.total = progress, description, total

    def __enter__(self) -> Callable[[int], None]:
        self.progress.start()
        task = self.progress.add_task(self.description, total=self.total)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


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


def _features_for(entry: Any, data: ImageDataset, *, cache: FeatureCache | None, writes: _CacheWrites,
                  accelerator: Any,
                  load_options: dict, batch_size: int, num_workers: int, chunk_size: int,
                  report: _Progress) -> ModelOutcome:
    """Cached features of ``entry`` if complete and current; otherwise load the model and extract."""
    from .backbones import BackboneLoadError, load_backbone

    key = cache_key(model_spec(entry), data.sample_key)
    if cache is not None:
        cached = cache.load(key)
        current = _local_hub_revision(entry)
        if cached is not None and (current is None or current == cached.manifest.get("model_revision")):
            report.say(f"[{entry.name}] features cached, model not loaded")
            return ModelOutcome(entry, "cached", revision=cached.manifest.get("model_revision"), features=cached)
    start = time.perf_counter()
    try:
        with accelerator.main_process_first():
            backbone = load_backbone(entry, device=accelerator.device, **load_options)
    except BackboneLoadError as exc:
        report.say(f"[{entry.name}] skipped: {exc}")
        return ModelOutcome(entry, "failed", error=str(exc))
    revision = backbone.resolved_revision
    done = cache.load_chunks(key, revision=revision) if cache is not None else {}

    def checkpoint(index: int, features: torch.Tensor, positions: np.ndarray, logits: torch.Tensor | None) -> None:
        writes("save_chunk", key, index, features, positions, logits, revision=revision)

    report.say(f"[{entry.name}] extracting features" + (f" (resuming after {len(done)} cached chunk(s))" if done else ""))
    with report.bar(entry.name, data.num_samples) as advance:
        result = extract_features(backbone, data, accelerator=accelerator, batch_size=batch_size,
                                  num_workers=num_workers, chunk_size=chunk_size, done_chunks=done,
                                  on_chunk=checkpoint, on_batch=advance)
    if result.num_corrupt:
        warnings.warn(f"{result.num_corrupt} of {data.num_samples} images could not be decoded and were skipped",
                      stacklevel=2)
    manifest = {"model": entry.name, "model_id": entry.hub_id, "model_revision": backbone.resolved_revision,
                "loader": entry.loader, "pooling": entry.pooling, "preprocessing": backbone.preprocessing,
                "details": backbone.details,  # e.g. preprocessing fixes applied by the loader
                "dataset": data.name, "config": data.config, "split": data.split, "dataset_fingerprint": data.fingerprint,
                "sample_key": data.sample_key, "num_corrupt": result.num_corrupt, "tool_version": __version__}
    features = CachedFeatures(result.features, result.positions, result.source_logits, manifest)
    if accelerator.is_main_process:
        writes("save", key, features)
    accelerator.wait_for_everyone()
    del backbone
    return ModelOutcome(entry, "resumed" if result.chunks_reused else "extracted", revision=manifest["model_revision"],
                        features=features, extraction_seconds=time.perf_counter() - start,
                        data_seconds=result.data_seconds, forward_seconds=result.forward_seconds,
                        num_corrupt=result.num_corrupt)


def _guarded(entry: Any, report: _Progress, work: Callable[[], ModelOutcome]) -> ModelOutcome:
    """``work()``, or a failed outcome with a one-line reason: one bad model must not end a zoo run."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 (any resolve/download/load/forward failure; Ctrl-C still stops the run)
        logger.debug("model %s failed", entry.name, exc_info=exc)
        reason = " ".join((str(exc) if isinstance(exc, HfTselError) else f"{type(exc).__name__}: {exc}").split())
        report.say(f"[{entry.name}] failed: {reason}")
        return ModelOutcome(entry, "failed", error=reason)


def _drop_thin_classes(outcomes: Sequence[ModelOutcome], data: ImageDataset) -> None:
    """Leave out classes that undecodable images left with fewer than 2 samples, and say so once.

    Metrics need every class present twice; scoring the classes that remain (and recording how
    many) beats both a crash and a silent score on fewer classes than the run reports.
    """
    names, expected = data.class_names, np.bincount(data.labels, minlength=len(data.class_names))
    notes = set()
    for o in outcomes:
        if o.features is None:
            continue
        labels = data.labels[o.features.positions]
        counts = np.bincount(labels, minlength=len(names))
        thin = np.flatnonzero((counts < 2) & (expected > 0))
        if not len(thin):
            continue
        keep = torch.from_numpy(~np.isin(labels, thin))
        f = o.features
        o.features = CachedFeatures(f.features[keep], f.positions[keep.numpy()],
                                    None if f.source_logits is None else f.source_logits[keep], f.manifest)
        remaining = len(np.unique(labels[keep.numpy()]))
        lost = "; ".join(f"class {names[c]!r} " + ("lost all its images" if counts[c] == 0 else
                                                    f"has {counts[c]} readable image") for c in thin)
        notes.add(f"{lost} (the others could not be decoded): left out, the ranking uses the {remaining} remaining "
                  "classes")
        if remaining < 2:
            o.features, o.status, o.error = None, "failed", "fewer than 2 classes have 2 or more readable images"
    for note in sorted(notes):
        warnings.warn(note, stacklevel=3)


def _metric_failure(metric: str, model: str, exc: Exception) -> str:
    """The note of a failed score; unexpected errors also warn (traceback with -v)."""
    from .metrics import MetricInputError

    if not isinstance(exc, MetricInputError):
        logger.debug("metric %s failed on %s", metric, model, exc_info=exc)
        warnings.warn(f"metric {metric} failed on {model}: {type(exc).__name__}: {exc}", stacklevel=3)
        return f"failed: {type(exc).__name__}: {exc}"
    return f"failed: {exc}"


def score_models(specs: Sequence[Any], outcomes: Sequence[ModelOutcome], labels: np.ndarray, *, seed: int = 0,
                 device: Any = None, metric_params: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One partial record per (model, metric): ``score`` (NaN if it does not apply or failed), ``note``, ``seconds``."""
    from .metrics import score, score_zoo

    metric_params = metric_params or {}
    ready = [o for o in outcomes if o.features is not None]
    records = []

    def record(outcome: ModelOutcome, spec: Any, value: float, note: str | None, seconds: float) -> None:
        records.append({"model": outcome.entry.name, "metric": spec.name, "score": value, "note": note,
                        "seconds": seconds})

    for spec in specs:
        params = metric_params.get(spec.name, {})
        if spec.consumes == "model_set":
            common = ready[0].features.positions if ready else np.array([], dtype=np.int64)
            for o in ready[1:]:
                common = np.intersect1d(common, o.features.positions)
            inputs = {o.entry.name: o.features.features[np.searchsorted(o.features.positions, common)] for o in ready}
            start = time.perf_counter()
            note, values = None, {}
            if "priors" in spec.parameters:
                params = {"priors": {o.entry.name: o.entry.metadata for o in ready}, **params}
            if len(ready) < 2:
                note = "not applicable: this metric compares at least 2 models with features"
            else:
                try:
                    values = score_zoo(spec.name, inputs, labels[common], seed=seed, device=device, **params)
                except Exception as exc:  # noqa: BLE001 (one metric's failure must not lose the other scores)
                    note = _metric_failure(spec.name, "all models", exc)
            seconds = (time.perf_counter() - start) / max(1, len(ready))
            for o in ready:
                record(o, spec, values.get(o.entry.name, float("nan")), note, seconds)
            continue
        for o in ready:
            feats = o.features
            if "source_probs" in spec.consumes and feats.source_logits is None:
                record(o, spec, float("nan"), "not applicable: the model has no source classifier head", 0.0)
                continue
            start = time.perf_counter()
            try:
                if "source_probs" in spec.consumes:
                    probs = torch.softmax(feats.source_logits.double(), dim=1)
                    value = score(spec.name, feats.features if "features" in spec.consumes else None,
                                  labels[feats.positions], source_probs=probs, seed=seed, device=device, **params)
                else:
                    value = score(spec.name, feats.features, labels[feats.positions], seed=seed, device=device, **params)
                note = None
            except Exception as exc:  # noqa: BLE001 (one metric's failure must not lose the other scores)
                value, note = float("nan"), _metric_failure(spec.name, o.entry.name, exc)
            record(o, spec, value, note, time.perf_counter() - start)
    return records


def rank(dataset: Any, *, zoo: str | Path | None = None, models: Sequence[str] | None = None,
         metrics: Iterable[str] | str | None = None, split: str = "train", config: str | None = None,
         revision: str | None = None, image_column: str | None = None, label_column: str | None = None,
         samples_per_class: int | None = None, max_samples: int | None = None, seed: int = 0, batch_size: int = 64,
         num_workers: int = 0, device: str | None = None, precision: str = "auto",
         cache_dir: str | Path | None = None, use_cache: bool = True, allow_pickle: bool = False,
         trust_remote_code: bool = False, loader: str | None = None, chunk_size: int = 512,
         metric_params: dict[str, dict] | None = None, progress: bool = False,
         n_boot: int = DEFAULT_N_BOOT) -> pd.DataFrame:
    """Rank backbones by transferability to ``dataset``; returns long-format results (``hf_tsel.results``).

    Metric names, the zoo and the cache folder are checked before any data is read. Features are
    cached per model; a re-run (even with other metrics) loads no model. A model that fails
    (resolving, loading or extracting) is reported with a one-line reason (``df.attrs["run"]["models"]``)
    and skipped; metrics that need a source classifier head
    get NaN with a ``note`` for models without one. Run metadata is in ``df.attrs["run"]``.

    Args:
        dataset: Hub id, local folder, or ``datasets.Dataset``; see :func:`hf_tsel.data.load_image_dataset`.
        zoo: bundled zoo name or YAML path (default :data:`DEFAULT_ZOO`); with ``models``, names
            are looked up in it first.
        models: model names / Hub ids to rank instead of a whole zoo.
        metrics: registry names (default :data:`DEFAULT_METRICS`), e.g. ``["logme", "ped+logme", "etran"]``.
        samples_per_class, max_samples, seed: stratified sampling of the split.
        device, precision: ``"cpu"``/``"cuda"`` (default: CUDA if available) and ``auto|fp32|bf16|fp16``.
        cache_dir, use_cache: feature cache folder (default ``$HF_TSEL_HOME/features``) or no cache.
        allow_pickle, trust_remote_code: opt-ins passed to the model loaders.
        metric_params: ``{metric_name: {param: value}}``.
        n_boot: bootstrap resamples behind the consensus's ``p_top1``/rank interval (0: none). Every run
            adds ``consensus`` rows (:func:`hf_tsel.recommendation.consensus_records`) and
            ``df.attrs["run"]["recommendation"]`` (the recommendation line and warnings).
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if n_boot < 0:
        raise UserError(f"n_boot must be >= 0 (0 skips the bootstrap), got {n_boot}")
    specs = resolve_metrics(metrics)
    metric_params = _checked_metric_params(specs, metric_params)
    entries = resolve_models(zoo, models, loader=loader)
    cache = FeatureCache(cache_dir) if use_cache else None
    if cache is not None:
        cache.check_writable()
    accelerator = make_accelerator(device, precision)
    report = _Progress(progress and accelerator.is_main_process)
    tick = time.perf_counter()
    with accelerator.main_process_first():  # one process fills the datasets cache, the others read it
        data = load_image_dataset(dataset, split=split, config=config, revision=revision, image_column=image_column,
                                  label_column=label_column, samples_per_class=samples_per_class,
                                  max_samples=max_samples, seed=seed)
    timings["data"] = time.perf_counter() - tick
    report.say(f"{data.name} [{data.split}]: {data.num_samples} samples, {data.num_classes} classes; "
               f"{len(entries)} model(s), metrics: {', '.join(s.name for s in specs)}")
    tick = time.perf_counter()
    load_options = {"allow_pickle": allow_pickle, "trust_remote_code": trust_remote_code}
    writes = _CacheWrites(cache)
    outcomes = [_guarded(entry, report, partial(_features_for, entry, data, cache=cache, writes=writes,
                                                accelerator=accelerator, load_options=load_options,
                                                batch_size=batch_size, num_workers=num_workers,
                                                chunk_size=chunk_size, report=report)) for entry in entries]
    timings["extraction"] = time.perf_counter() - tick
    _drop_thin_classes(outcomes, data)
    metric_device = accelerator.device
    if not accelerator.is_main_process:
        return pd.DataFrame(columns=list(RESULT_FIELDS))  # only the main process scores and reports
    from .recommendation import consensus_records

    tick = time.perf_counter()
    scored = score_models([s for s in specs if s.name != "consensus"], outcomes, data.labels, seed=seed,
                          device=metric_device, metric_params=metric_params)
    consensus, recommendation = consensus_records(outcomes, data.labels, scored, seed=seed, device=metric_device,
                                                  n_boot=n_boot)
    scored += consensus
    timings["metrics"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started
    df = _results_table(data, outcomes, scored, specs, seed=seed, timings=timings, zoo=zoo,
                        hardware=describe_hardware(metric_device, accelerator.num_processes))
    df.attrs["run"]["cache_dir"] = str(cache.root) if cache is not None else None
    df.attrs["run"]["cache_error"] = writes.error
    df.attrs["run"]["recommendation"] = recommendation
    return df


def _results_table(data: ImageDataset, outcomes: Sequence[ModelOutcome], scored: list[dict], specs: Sequence[Any], *,
                   seed: int, timings: dict[str, float], zoo: Any, hardware: str) -> pd.DataFrame:
    run_id = uuid.uuid4().hex[:12]
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_name = {o.entry.name: o for o in outcomes}
    used = [data.labels[o.features.positions] for o in outcomes if o.features is not None]
    num_classes = len(np.unique(np.concatenate(used))) if used else data.num_classes  # after undecodable images
    common = dict(dataset=data.name, config=data.config, split=data.split, dataset_revision=data.revision or data.fingerprint,
                  num_classes=num_classes, seed=seed, tool_version=__version__, timestamp=timestamp,
                  hardware=hardware, run_id=run_id)
    rows = []
    for item in scored:
        o = by_name[item["model"]]
        rows.append(empty_record(**common, **item, model_id=o.entry.hub_id, model_revision=o.revision,
                                 family=o.entry.family, pretraining=o.entry.pretraining,
                                 num_samples=len(o.features.positions), extraction_seconds=o.extraction_seconds))
    for o in outcomes:
        if o.features is None:
            rows += [empty_record(**common, model=o.entry.name, model_id=o.entry.hub_id, family=o.entry.family,
                                  pretraining=o.entry.pretraining, metric=s.name, score=float("nan"),
                                  num_samples=data.num_samples, note=f"failed: {o.error}") for s in specs]
    df = validate_results(add_ranks(pd.DataFrame(rows, columns=list(RESULT_FIELDS))))
    df.attrs["run"] = {
        "run_id": run_id, "tool_version": __version__, "timestamp": timestamp, "dataset": data.name,
        "config": data.config, "split": data.split, "dataset_revision": data.revision,
        "dataset_fingerprint": data.fingerprint, "image_column": data.image_column, "label_column": data.label_column,
        "num_samples": data.num_samples, "num_classes": num_classes, "class_names": data.class_names,
        "seed": seed, "zoo": str(zoo) if zoo else None, "metrics": [s.name for s in specs], "hardware": hardware,
        "stage_seconds": {k: round(v, 3) for k, v in timings.items()},
        "models": [o.as_dict() for o in outcomes],
    }
    return df
