"""``hf-tsel benchmark zoo``: a zoo of models trained here x offline target tasks, with ground truth.

Steps (each cached under ``work_dir``, default ``$HF_TSEL_HOME/zoo-benchmark``, so a re-run or a
crash loses at most the step in progress):

1. build the models of :mod:`.models` (``models/<name>/``, safetensors) and write their zoo YAML;
2. per target task of :mod:`.tasks`: extract features through the normal ``rank`` path
   (:func:`hf_tsel.groundtruth.features.zoo_features`, feature cache in ``work_dir/features``);
3. score every registry metric (feature metrics, PED-wrapped ones, model-set metrics), cached per
   metric code;
4. ground truth: the linear probe of :mod:`hf_tsel.groundtruth.linear_probe` and a full fine-tune
   (every layer + a new head) by :func:`hf_tsel.groundtruth.finetune.finetune` over a small
   learning-rate grid, selected on a validation part of the training split, reported on the test split;
   once per training seed (``finetune_seeds``): one row per seed plus their mean, the ground truth.
   Seeds other than 0 also record the validation accuracy after every epoch (the race simulation's input).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import yaml

from ...data import from_arrays
from ...errors import UserError
from ...groundtruth.features import zoo_features
from ...groundtruth.finetune import FinetuneResult, finetune
from ...groundtruth.table import ground_truth_frame, ground_truth_rows
from ...groundtruth.trainable import PreprocessedImages, trainable_backbone
from ...metrics import get_metric, list_metrics
from ...paths import tsel_home
from ...zoo import HOME_PLACEHOLDER
from ..benchmark import (
    JsonStore,
    _finetune_models,
    _probe_dataset,
    _score_dataset,
    evaluation_with_answer,
    finetune_settings,
)
from .models import MODEL_INFO, RECIPES, Recipe, build_recipe, training_draw
from .summary import markdown_summary, noise_ceiling, paired_differences
from .tasks import DEFAULT_TASKS, SOURCE_CLASSES, TARGET_TASKS, Split, source_reference_split

PROTOCOLS = ("linear-probe", "full")
ZOO_FILE = "zoo.yaml"
REFERENCE_DIR, REFERENCE_SPLIT, REFERENCE_MARKER = "source-reference", "validation", "hf_tsel_reference.json"
REFERENCE_IMAGES = 500  # per source task, split evenly over its classes


@dataclass
class ZooBenchmarkConfig:
    """What to build, score and measure; :func:`tiny_config` is the 3-model x 2-task smoke configuration."""

    recipes: str = "full"  # key of models.RECIPES
    tasks: tuple[str, ...] = DEFAULT_TASKS
    task_scale: float = 1.0  # multiplies every task's images per class
    metrics: tuple[str, ...] | None = None  # None: every registered metric, transforms included
    finetune_lrs: tuple[float, ...] = (0.02, 0.1)
    finetune_epochs: int = 3
    finetune_batch_size: int = 16
    finetune_seeds: tuple[int, ...] = (0, 1, 2)  # training seeds; the ground truth is their mean
    validation_fraction: float = 0.2
    seed: int = 0
    threads: int = 1
    work_dir: Path | None = None


def tiny_config(work_dir: Path) -> ZooBenchmarkConfig:
    """3 models (supervised, rotation, random-init) x 2 tasks, few hundred images, 1 epoch: a smoke test."""
    return ZooBenchmarkConfig(recipes="tiny", tasks=("fmnist", "textures"), task_scale=0.4, finetune_lrs=(0.05,),
                              finetune_epochs=1, finetune_seeds=(0, 1), work_dir=Path(work_dir))


def benchmark_metrics(requested: Sequence[str] | None = None) -> list[str]:
    """Every registered metric and transform composition (e.g. ``ped+logme``), or the ``requested`` ones."""
    if requested:
        return [get_metric(name).name for name in requested]
    return [m.name for m in list_metrics(include_transforms=True)]


def default_work_dir() -> Path:
    return tsel_home() / "zoo-benchmark"


def build_zoo(config: ZooBenchmarkConfig, log: Callable[[str], None] = print) -> tuple[Path, pd.DataFrame]:
    """Build (or reuse) every model and its source reference set; write ``work_dir/zoo.yaml`` and return it
    with the model table."""
    models_dir = config.work_dir / "models"
    infos = []
    for recipe in RECIPES[config.recipes]:
        infos += build_recipe(recipe, models_dir, log=log)
    build_source_references(RECIPES[config.recipes], config.work_dir / REFERENCE_DIR, log=log)
    zoo_path = config.work_dir / ZOO_FILE
    staging = zoo_path.with_suffix(f".{os.getpid()}.tmp")  # atomic: a parallel run may be reading it
    staging.write_text(zoo_yaml(infos, "."))
    staging.replace(zoo_path)
    return zoo_path, model_table(infos)


def build_source_references(recipes: Sequence[Recipe], folder: Path, *, log: Callable[[str], None] = print) -> None:
    """One saved dataset per source task (``folder/<source>``, split ``validation``): images no model trained on.

    They are the models' source reference sets (:mod:`hf_tsel.source_reference`): the source-mode
    persistence ratio embeds them with each model and clusters them by their source classes.
    """
    trained_on = [training_draw(r) for r in recipes if r.method != "random"]
    for source in sorted({draw[0] for draw in trained_on}):
        out = folder / source
        spec = {"source": source, "per_class": REFERENCE_IMAGES // len(SOURCE_CLASSES[source]),
                "trained_on": sorted(trained_on)}
        marker = out / REFERENCE_MARKER
        if marker.is_file() and json.loads(marker.read_text()) == json.loads(json.dumps(spec)):
            continue
        if out.exists() and not marker.is_file():
            raise UserError(f"{out} exists but was not written by hf-tsel (no {REFERENCE_MARKER})",
                            fix="move it away, or pass another --work-dir.")
        staging = folder / f".{source}.{os.getpid()}.tmp"
        split = write_source_reference(source, spec["per_class"], trained_on, staging)
        (staging / REFERENCE_MARKER).write_text(json.dumps(spec))
        if out.exists():  # an outdated reference set written here (it has the marker)
            shutil.rmtree(out)
        staging.rename(out)
        log(f"  source reference set {source}: {len(split.labels)} images, {split.num_classes} classes")


def write_source_reference(source: str, per_class: int, trained_on: Sequence[tuple[str, int, int]], out: Path) -> Split:
    """Save ``per_class`` images per class of ``source`` that none of the ``trained_on`` draws used as a dataset
    folder (split ``validation``); returns the split."""
    import datasets

    split = source_reference_split(source, per_class, trained_on=trained_on)
    dataset = from_arrays(split.images, split.labels, split.class_names, name=f"zoo-source-{source}")
    datasets.DatasetDict({REFERENCE_SPLIT: dataset}).save_to_disk(str(out))
    return split


def zoo_yaml(infos: Sequence[dict[str, Any]], root: str) -> str:
    """The zoo YAML of built models; ``root`` (``.`` or a placeholder) prefixes ``models/`` and ``source-reference/``."""
    entries = []
    for info in infos:
        recipe = info["recipe"]
        trained = recipe["method"] != "random"
        source = f"source={recipe['source']}; " if trained else ""
        data = "none (random init)" if not trained else (
            f"{recipe['source']} ({info['train_images']} images{', no labels' if recipe['method'] == 'rotation' else ''})")
        reference = {"source_reference": {"dataset": f"{root}/{REFERENCE_DIR}/{training_draw(Recipe(**recipe))[0]}",
                                          "split": REFERENCE_SPLIT}} if trained else {}
        entries.append({
            "name": info["name"], "hub_id": f"{root}/models/{info['name']}", "loader": "timm",
            "family": info["family"], "pretraining": recipe["method"], "license": "mit",
            "metadata": {"params": info["params"], "imagenet_top1": None, "pretraining_data": data,
                         "source": "hf_tsel_zoo.json of the built model (hf_tsel/offline/zoo)"},
            "notes": (f"{info['timm_architecture']} {json.dumps(info['model_args'])}; params={info['params']}; "
                      f"{source}train_images={info['train_images']}; epochs={recipe['epochs']}; "
                      f"stage={info['stage']} ({info['trained_fraction']:g} of the steps); "
                      f"source_accuracy={info['source_accuracy']:.3f}"),
            **reference,
        })
    document = {"name": "zoo-benchmark",
                "description": "Small timm models pre-trained on CPU from offline data by `hf-tsel benchmark zoo` "
                               "(hf_tsel/offline/zoo); rebuilt deterministically into $HF_TSEL_HOME/zoo-benchmark.",
                "models": entries}
    return yaml.safe_dump(document, sort_keys=False, width=200)


def model_table(infos: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per model: architecture, size, pre-training method, source task, data size, quality."""
    return pd.DataFrame([{
        "model": i["name"], "architecture": i["recipe"]["architecture"], "timm_architecture": i["timm_architecture"],
        "family": i["family"], "params": i["params"], "pretraining": i["recipe"]["method"],
        "source": i["recipe"]["source"] if i["recipe"]["method"] != "random" else None, "stage": i["stage"],
        "train_images": i["train_images"], "epochs": i["recipe"]["epochs"] * i["trained_fraction"],
        "source_accuracy": round(i["source_accuracy"], 4), "build_seconds": round(i["seconds"], 1)} for i in infos])


def _datasets(task: str, config: ZooBenchmarkConfig):
    train, test = TARGET_TASKS[task].splits(scale=config.task_scale, seed=config.seed)
    return tuple(from_arrays(s.images, s.labels, s.class_names, name=f"zoo-{task}-{part}")
                 for s, part in ((train, "train"), (test, "test")))


def _preprocessed(data: Any, preprocessor: Any, store: dict) -> torch.utils.data.TensorDataset:
    """Every image of a sample preprocessed once (all zoo models share one preprocessing)."""
    key = (data.sample_key, json.dumps(preprocessor.to_dict(), sort_keys=True))
    if key not in store:
        pairs = [PreprocessedImages(data, preprocessor)[i] for i in range(data.num_samples)]
        store[key] = torch.utils.data.TensorDataset(torch.stack([p[0] for p in pairs]),
                                                    torch.tensor([p[1] for p in pairs]))
    return store[key]


def _finetune_task(task: str, train, test, config: ZooBenchmarkConfig, log: Callable[[str], None],
                   seeds: Sequence[int] | None = None) -> list[dict]:
    """Full fine-tune (all layers + new head) of every model, once per training seed; lr chosen on a
    validation split. One row per (model, seed) with a ``seed`` column (see :func:`seed_mean_rows`)."""
    from accelerate import Accelerator

    fit_rows, val_rows = validation_rows(train.data.labels, config)
    accelerator, tensors, rows = Accelerator(cpu=True), {}, []
    for seed in config.finetune_seeds if seeds is None else seeds:
        # one run folder per seed; seed 0 keeps the folder name of the single-seed benchmark (its cache)
        settings = replace(finetune_settings(config.finetune_lrs, config.finetune_epochs, config.finetune_batch_size),
                           seeds=(seed,))

        def fit_all_layers(entry: Any, run_dir: Path, settings=settings, seed=seed) -> FinetuneResult:
            trainable = trainable_backbone(entry)
            train_set = _preprocessed(train.data, trainable.preprocessor, tensors)
            test_set = _preprocessed(test.data, trainable.preprocessor, tensors)
            return finetune(trainable.build, trainable.feature_dim, train.data.num_classes,
                            torch.utils.data.Subset(train_set, fit_rows.tolist()), test_set, settings, run_dir,
                            accelerator=accelerator, record_curve=seed != 0,
                            validation_set=torch.utils.data.Subset(train_set, val_rows.tolist()))

        rows += [{**row, "seed": seed} for row in _finetune_models(
            task, "full", train, test, settings, fit_all_layers, work_dir=config.work_dir, num_train=len(fit_rows),
            log=log, run_identity=(config.validation_fraction,))]
    return rows


def validation_rows(labels: Sequence[int], config: ZooBenchmarkConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(training rows, validation rows)`` of a task's train split: a stratified, seeded ``validation_fraction``."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(labels)), test_size=config.validation_fraction, stratify=labels,
                            random_state=config.seed)


def seed_mean_rows(rows: Sequence[dict]) -> list[dict]:
    """One ground-truth row per (dataset, model, protocol) of seeded rows: the mean accuracy over seeds
    (``seed`` empty, ``seeds`` the number averaged)."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return []
    means = frame.groupby(["dataset", "model", "protocol"], sort=False).agg(
        accuracy=("accuracy", "mean"), seeds=("seed", "nunique"), seconds=("seconds", "sum")).reset_index()
    return means.to_dict("records")


@dataclass
class ZooBenchmarkResult:
    models: pd.DataFrame
    scores: pd.DataFrame  # dataset, model, metric, score, note, seconds
    ground_truth: pd.DataFrame
    evaluation: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    zoo_path: Path | None = None


def run_zoo_benchmark(config: ZooBenchmarkConfig | None = None, *,
                      log: Callable[[str], None] = print) -> ZooBenchmarkResult:
    """Build, extract, score and measure ground truth (cached); see the module docstring."""
    config = replace(config or ZooBenchmarkConfig())
    unknown = sorted(set(config.tasks) - set(TARGET_TASKS))
    if unknown:
        raise UserError(f"unknown zoo-benchmark task(s) {unknown}; choose from {sorted(TARGET_TASKS)}")
    if config.recipes not in RECIPES:
        raise UserError(f"unknown model set {config.recipes!r}; choose from {sorted(RECIPES)}")
    metrics = benchmark_metrics(config.metrics)
    config.work_dir = Path(config.work_dir or default_work_dir())
    config.work_dir.mkdir(parents=True, exist_ok=True)
    (config.work_dir / "config.json").write_text(json.dumps(asdict(config), indent=1, default=str))
    from threadpoolctl import threadpool_limits

    # On a shared, oversubscribed CPU extra threads spin instead of working (measured: 1 thread trains
    # these models 10-30x faster than 2 under a load of ~11 on 2 cores); BLAS is limited the same way.
    torch.set_num_threads(config.threads)
    with threadpool_limits(config.threads):
        return _run(config, metrics, log)


def _run(config: ZooBenchmarkConfig, metrics: list[str], log: Callable[[str], None]) -> ZooBenchmarkResult:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    zoo_path, models = build_zoo(config, log)
    timings["build models"] = time.perf_counter() - started
    score_store = JsonStore(config.work_dir / "scores.json")
    probe_store = JsonStore(config.work_dir / "linear_probe.json")
    cache_dir = config.work_dir / "features"
    scores, ground_truth = [], []
    for task in config.tasks:
        log(f"{task}: {TARGET_TASKS[task].relation}")
        train_ds, test_ds = _datasets(task, config)
        step = time.perf_counter()
        train = zoo_features(train_ds, zoo_path, split="train", cache_dir=cache_dir, seed=config.seed,
                             source_references=True)
        test = zoo_features(test_ds, zoo_path, split="test", cache_dir=cache_dir, seed=config.seed)
        for model, why in {**train.failures, **test.failures}.items():
            log(f"  {task}: {model} has no features: {why}")
        timings["features"] = timings.get("features", 0.0) + time.perf_counter() - step
        for name, run in (("scores", lambda: _score_dataset(task, train, metrics, score_store, log)),
                          ("linear probe", lambda: _probe_dataset(task, train, test, probe_store, log)),
                          ("fine-tune", lambda: _finetune_task(task, train, test, config, log))):
            step = time.perf_counter()
            (scores if name == "scores" else ground_truth).extend(run())
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - step
    scores_df = pd.DataFrame(scores)
    seeded = [row for row in ground_truth if "seed" in row]
    gt_df = ground_truth_frame([*ground_truth, *seed_mean_rows(seeded)])
    evaluation = evaluation_with_answer(scores_df, ground_truth_rows(gt_df))
    timings["total"] = time.perf_counter() - started
    return ZooBenchmarkResult(models, scores_df, gt_df, evaluation, timings, zoo_path)


def write_results(result: ZooBenchmarkResult, out_dir: str | Path, *, seed: int = 0) -> list[Path]:
    """``zoo_scores.csv``, ``zoo_ground_truth.csv`` (one row per seed plus the seed mean), ``zoo_ceiling.csv``
    (the noise ceiling per task), ``zoo_evaluation.csv``, ``zoo_models.csv``, ``zoo_pairwise.csv`` (metric
    differences per protocol) and ``zoo_summary.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"zoo_{name}" for name in
             ("scores.csv", "ground_truth.csv", "ceiling.csv", "evaluation.csv", "models.csv", "pairwise.csv",
              "summary.md")}
    result.scores[["dataset", "model", "metric", "score"]].sort_values(["dataset", "metric", "model"]).to_csv(
        paths["scores.csv"], index=False, float_format="%.6g")
    truth = result.ground_truth.reindex(columns=["dataset", "model", "protocol", "accuracy", "seed", "seeds"])
    truth.astype({"seed": "Int64", "seeds": "Int64"}).sort_values(["dataset", "protocol", "model", "seed"]).to_csv(
        paths["ground_truth.csv"], index=False, float_format="%.4f")
    noise_ceiling(result.ground_truth).to_csv(paths["ceiling.csv"], index=False, float_format="%.4f")
    result.evaluation.sort_values(["protocol", "metric", "dataset"]).to_csv(paths["evaluation.csv"], index=False,
                                                                          float_format="%.4f")
    result.models.to_csv(paths["models.csv"], index=False)
    protocols = sorted(result.evaluation["protocol"].unique())
    pd.concat([paired_differences(result.evaluation, p, seed=seed).assign(protocol=p) for p in protocols]).to_csv(
        paths["pairwise.csv"], index=False, float_format="%.4f")
    paths["summary.md"].write_text(markdown_summary(result.models, result.ground_truth, result.evaluation,
                                                    result.timings, seed=seed))
    return list(paths.values())


def portable_zoo_yaml(result: ZooBenchmarkResult) -> str:
    """The zoo YAML with ``$HF_TSEL_HOME/zoo-benchmark/...`` paths (``model_zoos/zoo-benchmark.yaml``)."""
    infos = [json.loads((result.zoo_path.parent / "models" / name / MODEL_INFO).read_text())
             for name in result.models["model"]]
    return zoo_yaml(infos, f"{HOME_PLACEHOLDER}/zoo-benchmark")
