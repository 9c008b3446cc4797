"""Offline ranking benchmark: real packaged backbones x real offline datasets, scored and checked.

For every offline dataset (:mod:`hf_tsel.offline.benchmark_datasets`) the benchmark

1. extracts (or reuses from the shared feature cache) the features of every model of the zoos
   (default: ``offline`` + ``offline-benchmark``) on a train and a test sample;
2. scores the train features with every registry metric (plus PED-wrapped ones);
3. measures ground truth on the same samples: a linear probe (train -> test) for every model, and
   a short fine-tune of the last stage plus a new head for models with a PyTorch module;
4. correlates scores with ground truth (:func:`hf_tsel.evaluation.evaluate_ranking`).

Everything is cached under ``work_dir`` (default ``$HF_TSEL_HOME/offline-benchmark``): scores
and probe results in JSON stores keyed by the features (and metric code) they came from,
fine-tuning runs in per-grid-point folders. A re-run computes only what is missing, e.g. a newly
registered metric.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from ..errors import UserError
from ..extraction import ModelOutcome
from ..groundtruth.evaluate import evaluation_table
from ..groundtruth.features import zoo_features
from ..groundtruth.finetune import FinetuneConfig, FinetuneResult, Grid, finetune
from ..groundtruth.linear_probe import linear_probe
from ..groundtruth.table import GOAL_OF_PROTOCOL, ground_truth_frame
from ..groundtruth.trainable import PreprocessedImages, split_last_stage, trainable_backbone, trunk_outputs
from ..metrics import InputKind, get_metric, list_metrics
from ..metrics.consensus import ANSWERS, GOALS
from ..metrics.priors import PRIOR_METRICS
from ..paths import tsel_home
from ..recommendation import answer_from_scores
from ..scoring import resolve_metrics, score_models
from .benchmark_datasets import OFFLINE_DATASETS, load_offline_dataset

PED_METRICS: tuple[str, ...] = ("ped+sfda", "ped+logme")
DEFAULT_ZOOS: tuple[str, ...] = ("offline", "offline-benchmark")
PROTOCOLS: tuple[str, ...] = ("linear-probe", "finetune-last")


@dataclass
class OfflineBenchmarkConfig:
    """What to run; the defaults are sized for a 2-core CPU (about 30 train / 20 test images per class)."""

    datasets: tuple[str, ...] = tuple(OFFLINE_DATASETS)
    zoos: tuple[str, ...] = DEFAULT_ZOOS
    metrics: tuple[str, ...] | None = None  # None: every registry metric + PED_METRICS
    protocols: tuple[str, ...] = PROTOCOLS
    train_per_class: int = 30
    test_per_class: int = 20
    seed: int = 0
    finetune_epochs: int = 10
    finetune_lr: float = 0.01
    finetune_batch_size: int = 32
    work_dir: Path | None = None  # scores / probes / fine-tuning; None: $HF_TSEL_HOME/offline-benchmark
    cache_dir: Path | None = None  # feature cache; None: the shared default ($HF_TSEL_HOME/features)

    def per_class(self, dataset: str) -> tuple[int, int]:
        # The LFW subset has only 100 images per class.
        return (40, 40) if dataset == "skimage-lfw" else (self.train_per_class, self.test_per_class)


def benchmark_metrics(requested: Sequence[str] | None = None) -> list[str]:
    """Every registered metric (no transforms) plus the PED-wrapped ones, or the ``requested`` names."""
    if requested:
        return [get_metric(name).name for name in requested]
    return [m.name for m in list_metrics(include_transforms=False)] + list(PED_METRICS)


class JsonStore:
    """A small JSON dict on disk; every update merges into the file under a lock and replaces it atomically.

    Several benchmark processes (e.g. one per dataset) can therefore share one work directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.data = {**self._read(), key: value}
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            tmp.replace(self.path)


def _signature(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _zoo_features(dataset: Any, zoos: Sequence[str], split: str, config: OfflineBenchmarkConfig):
    merged = None
    for zoo in zoos:
        part = zoo_features(dataset, zoo, split=split, cache_dir=config.cache_dir, seed=config.seed)
        if merged is None:
            merged = part
        else:
            merged.entries.update(part.entries)
            merged.features.update(part.features)
            merged.failures.update(part.failures)
    return merged


def metric_code_signature(name: str) -> str:
    """Hash of the code behind a metric: its module(s) plus the shared private helpers.

    Cached scores are recomputed after any change to that code. For ``<prefix>+<base>`` the
    transform's module is taken to be ``hf_tsel/metrics/<prefix>.py``.
    """
    folder = Path(sys.modules["hf_tsel.metrics"].__file__).parent
    *prefixes, base = name.split("+")
    files = {Path(sys.modules[get_metric(base).fn.__module__].__file__)}
    files |= {folder / f"{prefix}.py" for prefix in prefixes if (folder / f"{prefix}.py").is_file()}
    files |= set(folder.glob("_*.py"))
    return _signature(*[(p.name, p.read_text()) for p in sorted(files)])


def _score_dataset(name: str, train, metrics: Sequence[str], store: JsonStore, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for metric in metrics:
        spec = resolve_metrics([metric])[0]
        keys = train.feature_keys()
        if spec.consumes is InputKind.REFERENCE_FEATURES:  # the score also depends on the reference sample's features
            keys = {m: f"{k}|{train.references[m].cache_key if m in train.references else None}" for m, k in keys.items()}
        # Model-set metrics (ETran, NCTI) depend on the whole zoo; others only on each model's features.
        zoo = _signature(keys if spec.consumes is InputKind.MODEL_SET else None)
        store_key = f"{name}|{spec.name}|{metric_code_signature(spec.name)}|{zoo}"
        cached = store.get(store_key)
        if cached is None or set(cached) != set(keys) or any(cached[m]["key"] != keys[m] for m in keys):
            start = time.perf_counter()
            outcomes = [ModelOutcome(train.entries[m], "cached", features=f, reference=train.references.get(m),
                                     reference_error=train.reference_failures.get(m)) for m, f in train.features.items()]
            scored = score_models([spec], outcomes, train.data.labels, seed=0)
            cached = {r["model"]: {"score": None if math.isnan(r["score"]) else r["score"], "note": r["note"],
                                   "seconds": r["seconds"], "key": keys[r["model"]]} for r in scored}
            store.put(store_key, cached)
            log(f"  {name}: {spec.name} scored in {time.perf_counter() - start:.1f}s")
        rows += [{"dataset": name, "model": m, "metric": spec.name, "score": v["score"], "note": v["note"],
                  "seconds": v["seconds"]} for m, v in sorted(cached.items())]
    return rows


def _probe_dataset(name: str, train, test, store: JsonStore, log: Callable[[str], None]) -> list[dict]:
    rows = []
    for model, train_features in train.features.items():
        if model not in test.features:
            continue
        test_features = test.features[model]
        key = f"{name}|{model}|linear-probe|{_signature(train_features.manifest['key'], test_features.manifest['key'])}"
        result = store.get(key)
        if result is None:
            start = time.perf_counter()
            probe = linear_probe(train_features.features, train.data.labels[train_features.positions],
                                 test_features.features, test.data.labels[test_features.positions])
            result = {**probe.as_dict(), "seconds": time.perf_counter() - start}
            store.put(key, result)
            log(f"  {name}: linear probe of {model}: {result['accuracy']:.3f}")
        rows.append({"dataset": name, "model": model, "protocol": "linear-probe", "accuracy": result["accuracy"],
                     "num_train": result["num_train"], "num_test": result["num_test"],
                     "hyperparameters": f"C={result['c']:g}", "seconds": result["seconds"]})
    return rows


def finetune_settings(learning_rates: Sequence[float], epochs: int, batch_size: int) -> FinetuneConfig:
    """The benchmarks' fine-tuning: SGD over ``learning_rates`` without weight decay or augmentation, last epoch kept."""
    return FinetuneConfig(grid=Grid("sgd", tuple(learning_rates), (0.0,)), epochs=epochs, batch_size=batch_size,
                          augment=False, train_layers="all", selection="last-epoch")


def _finetune_models(name: str, protocol: str, train, test, settings: FinetuneConfig,
                     fit: Callable[[Any, Path], FinetuneResult | None], *, work_dir: Path, num_train: int,
                     log: Callable[[str], None], run_identity: tuple[Any, ...] = ()) -> list[dict]:
    """Ground-truth rows of every model with train and test features, each fine-tuned by ``fit(entry, run_dir)``.

    The run folder is named by the model's feature keys, ``settings`` and ``run_identity``, so a finished
    run (its ``done.json``) is read back instead of redone. ``fit`` returns None for a model it skips.
    """
    rows = []
    for model, entry in train.entries.items():
        if model not in train.features or model not in test.features:
            continue
        run_dir = work_dir / "finetune" / name / model / _signature(
            train.feature_keys()[model], test.feature_keys()[model], asdict(settings), *run_identity)
        done = run_dir / "done.json"
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            continue
        start = time.perf_counter()
        result = fit(entry, run_dir)
        if result is None:
            continue
        row = {"dataset": name, "model": model, "protocol": protocol, "accuracy": result.accuracy,
               "num_train": num_train, "num_test": test.data.num_samples,
               "hyperparameters": result.hyperparameters, "seconds": time.perf_counter() - start}
        done.write_text(json.dumps(row))
        log(f"  {name}: fine-tuned {model} ({protocol}): {result.accuracy:.3f} "
            f"({row['seconds']:.0f}s, {result.hyperparameters})")
        rows.append(row)
    return rows


def _finetune_dataset(name: str, train, test, config: OfflineBenchmarkConfig, log: Callable[[str], None]) -> list[dict]:
    """Fine-tune the last stage + a new head on cached outputs of the frozen trunk (models with a torch module)."""
    from accelerate import Accelerator  # only the fine-tuning protocol needs it

    settings = finetune_settings((config.finetune_lr,), config.finetune_epochs, config.finetune_batch_size)
    accelerator = Accelerator(cpu=True)

    def fit_last_stage(entry: Any, run_dir: Path) -> FinetuneResult | None:
        try:
            trainable = trainable_backbone(entry)
        except UserError as exc:
            log(f"  {name}: no fine-tuning ground truth for {entry.name} ({exc})")
            return None
        train_images = PreprocessedImages(train.data, trainable.preprocessor)
        example = torch.stack([train_images[i][0] for i in range(2)])
        split = split_last_stage(trainable.build(), example)
        if split is None:
            log(f"  {name}: no fine-tuning ground truth for {entry.name} (its last stage cannot be split off)")
            return None
        trunk = split[0]
        return finetune(lambda: split_last_stage(trainable.build(), example)[1], trainable.feature_dim,
                        train.data.num_classes, trunk_outputs(trunk, train_images),
                        trunk_outputs(trunk, PreprocessedImages(test.data, trainable.preprocessor)), settings, run_dir,
                        accelerator=accelerator)

    return _finetune_models(name, "finetune-last", train, test, settings, fit_last_stage, work_dir=config.work_dir,
                            num_train=train.data.num_samples, log=log)


@dataclass
class OfflineBenchmarkResult:
    scores: pd.DataFrame  # dataset, model, metric, score, note, seconds
    ground_truth: pd.DataFrame  # GT table
    evaluation: pd.DataFrame  # dataset, protocol, metric, weighted_kendall_tau, ...
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    seconds: float = 0.0


def run_offline_benchmark(config: OfflineBenchmarkConfig | None = None, *,
                          log: Callable[[str], None] = print) -> OfflineBenchmarkResult:
    """Run (or complete from cache) the offline benchmark; see the module docstring."""
    config = config or OfflineBenchmarkConfig()
    unknown = sorted(set(config.datasets) - set(OFFLINE_DATASETS))
    if unknown:
        raise UserError(f"unknown offline dataset(s) {unknown}; choose from {sorted(OFFLINE_DATASETS)}")
    bad_protocols = sorted(set(config.protocols) - set(PROTOCOLS))
    if bad_protocols:
        raise UserError(f"unknown protocol(s) {bad_protocols}; choose from {list(PROTOCOLS)}")
    metrics = benchmark_metrics(config.metrics)
    started = time.perf_counter()
    if config.work_dir is None:
        config.work_dir = tsel_home() / "offline-benchmark"
    config.work_dir.mkdir(parents=True, exist_ok=True)
    (config.work_dir / "config.json").write_text(json.dumps(asdict(config), indent=1, default=str))
    score_store = JsonStore(config.work_dir / "scores.json")
    probe_store = JsonStore(config.work_dir / "linear_probe.json")
    scores, ground_truth, failures = [], [], {}
    for name in config.datasets:
        train_per_class, test_per_class = config.per_class(name)
        log(f"{name}: {train_per_class}/{test_per_class} images per class (train/test)")
        train_ds, test_ds = load_offline_dataset(name, train_per_class=train_per_class,
                                                 test_per_class=test_per_class, seed=config.seed)
        train = _zoo_features(train_ds, config.zoos, "train", config)
        test = _zoo_features(test_ds, config.zoos, "test", config)
        failures[name] = {**train.failures, **test.failures}
        for model, why in failures[name].items():
            log(f"  {name}: {model} skipped: {why}")
        scores += _score_dataset(name, train, metrics, score_store, log)
        if "linear-probe" in config.protocols:
            ground_truth += _probe_dataset(name, train, test, probe_store, log)
        if "finetune-last" in config.protocols:
            ground_truth += _finetune_dataset(name, train, test, config, log)
    scores_df = pd.DataFrame(scores)
    gt_df = ground_truth_frame(ground_truth)
    evaluation = evaluation_with_answer(scores_df, gt_df)
    return OfflineBenchmarkResult(scores_df, gt_df, evaluation, failures, time.perf_counter() - started)


def write_benchmark_tables(result: OfflineBenchmarkResult, out_dir: str | Path) -> list[Path]:
    """``offline_scores.csv``, ``offline_ground_truth.csv`` and ``offline_evaluation.csv`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "offline_scores.csv", out_dir / "offline_ground_truth.csv", out_dir / "offline_evaluation.csv"]
    result.scores[["dataset", "model", "metric", "score"]].sort_values(["dataset", "metric", "model"]).to_csv(
        paths[0], index=False, float_format="%.6g")
    result.ground_truth[["dataset", "model", "protocol", "accuracy"]].sort_values(
        ["dataset", "protocol", "model"]).to_csv(paths[1], index=False, float_format="%.4f")
    result.evaluation.sort_values(["protocol", "metric", "dataset"]).to_csv(paths[2], index=False, float_format="%.4f")
    return paths


def merged_with_tables(result: OfflineBenchmarkResult, out_dir: str | Path) -> OfflineBenchmarkResult:
    """``result`` completed with the rows of the tables already in ``out_dir`` that this run did not compute.

    A run with ``--metrics`` or ``--protocols`` (e.g. a newly registered metric) thereby updates its own
    rows of the committed tables and keeps the rest: a (dataset, metric) score or (dataset, protocol)
    ground truth computed by this run replaces the stored one, everything else stays.
    """
    out_dir = Path(out_dir)
    old_scores, old_truth = out_dir / "offline_scores.csv", out_dir / "offline_ground_truth.csv"
    scores, truth = result.scores, result.ground_truth
    if old_scores.is_file():
        kept = pd.read_csv(old_scores)
        fresh = pd.MultiIndex.from_frame(scores[["dataset", "metric"]])
        scores = pd.concat([kept[~pd.MultiIndex.from_frame(kept[["dataset", "metric"]]).isin(fresh)], scores],
                           ignore_index=True)
    if old_truth.is_file():
        kept = pd.read_csv(old_truth)
        fresh = pd.MultiIndex.from_frame(truth[["dataset", "protocol"]])
        truth = pd.concat([kept[~pd.MultiIndex.from_frame(kept[["dataset", "protocol"]]).isin(fresh)], truth],
                          ignore_index=True)
    return replace(result, scores=scores, ground_truth=truth, evaluation=evaluation_with_answer(scores, truth))


def weighted_tau_table(evaluation: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Metric x dataset table of weighted tau for one GT protocol, with the mean over datasets."""
    rows = evaluation[evaluation["protocol"] == protocol]
    table = rows.pivot_table(index="metric", columns="dataset", values="weighted_kendall_tau", aggfunc="first")
    table["mean"] = table.mean(axis=1)
    return table.sort_values("mean", ascending=False)


ANSWER = "answer"


def answer_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Each goal's answer (:data:`hf_tsel.metrics.consensus.ANSWERS`) per dataset and model, combined from the
    member rows of ``scores`` (:func:`hf_tsel.recommendation.answer_from_scores`), as score rows of metric
    ``answer:<goal>`` (models without every member are left out).
    """
    rows = [{"dataset": dataset, "model": model, "metric": f"{ANSWER}:{goal}", "score": value}
            for dataset, group in scores.groupby("dataset") for goal in GOALS
            for model, value in answer_from_scores(group, goal).items()]
    return pd.DataFrame(rows, columns=["dataset", "model", "metric", "score"])


def evaluation_with_answer(scores: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """:func:`~hf_tsel.groundtruth.evaluate.evaluation_table` of every metric plus the ``answer`` rows
    (:func:`answer_evaluation`)."""
    return pd.concat([evaluation_table(scores, ground_truth), answer_evaluation(scores, ground_truth)],
                     ignore_index=True)


def answer_evaluation(scores: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """Evaluation rows of metric ``answer``: against each ground-truth protocol, the answer for that protocol's goal
    (:data:`hf_tsel.groundtruth.table.GOAL_OF_PROTOCOL`), as a user who knows what they will train gets it."""
    answers = answer_scores(scores)
    if answers.empty:
        return pd.DataFrame()
    evaluation = evaluation_table(answers, ground_truth)
    matching = evaluation["metric"] == ANSWER + ":" + evaluation["protocol"].map(GOAL_OF_PROTOCOL)
    return evaluation[matching].assign(metric=ANSWER)


def answer_table(evaluation: pd.DataFrame, ground_truth: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """The answer for the protocol's goal (``answer`` rows, :func:`answer_evaluation`), every goal's answer metrics,
    the priors and a random pick: weighted tau per task, mean and worst, top-1 regret.

    Random: expected tau 0 and expected regret ``best - mean accuracy``.
    """
    members = [m for config in ANSWERS.values() for m in config.members]
    rows = evaluation[(evaluation["protocol"] == protocol)
                      & evaluation["metric"].isin([ANSWER, *members, *PRIOR_METRICS])]
    gt = ground_truth[ground_truth["protocol"] == protocol].groupby("dataset")["accuracy"]
    random = pd.DataFrame({"dataset": gt.max().index, "metric": "random", "weighted_kendall_tau": 0.0,
                           "top1_regret": (gt.max() - gt.mean()).to_numpy()})
    rows = pd.concat([rows[["dataset", "metric", "weighted_kendall_tau", "top1_regret"]], random])
    table = rows.pivot_table(index="metric", columns="dataset", values="weighted_kendall_tau", aggfunc="first")
    summary = rows.groupby("metric").agg(mean_tau=("weighted_kendall_tau", "mean"),
                                         worst_tau=("weighted_kendall_tau", "min"),
                                         mean_top1_regret=("top1_regret", "mean"))
    return table.join(summary).sort_values("mean_tau", ascending=False)


def _answer_text() -> str:
    return "; ".join(f"{goal}: {' + '.join(config.members)}" for goal, config in ANSWERS.items())


def markdown_summary(result: OfflineBenchmarkResult) -> str:
    """Weighted-tau tables (one per GT protocol) and the ground-truth accuracies, as Markdown."""
    parts = []
    for protocol in sorted(result.evaluation["protocol"].unique()):
        parts.append(f"How sure is the answer? `answer` (the answer for the goal this ground truth measures, "
                     f"{GOAL_OF_PROTOCOL[protocol]}; per goal: {_answer_text()}), every goal's answer metric, the "
                     f"priors and random against the **{protocol}** ground truth (weighted tau per dataset; top-1 "
                     "regret in accuracy; the held-out choice of each goal's answer is in "
                     "benchmarks/results/consensus_selection.md, the calibration of P(best) in "
                     "consensus_calibration.md):\n")
        parts.append(_markdown(answer_table(result.evaluation, result.ground_truth, protocol).reset_index()))
    for protocol in sorted(result.evaluation["protocol"].unique()):
        table = weighted_tau_table(result.evaluation, protocol)
        parts.append(f"Weighted Kendall tau against the **{protocol}** ground truth "
                     f"(rows: metrics, best mean first; '-': fewer than 2 scored models):\n")
        parts.append(_markdown(table.reset_index()))
    accuracies = result.ground_truth.pivot_table(index="model", columns=["protocol", "dataset"], values="accuracy")
    accuracies.columns = [f"{d} ({p})" for p, d in accuracies.columns]
    parts.append("Ground-truth accuracies (test split):\n")
    parts.append(_markdown(accuracies.reset_index()))
    return "\n".join(parts)


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.3f}"
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"
