"""Before/after ablation of the seed-paper methods (LEAD, ITM, persistence ratio) on real features.

Scores every variant below on cached features and correlates the scores with a ground-truth
table (weighted Kendall tau and the other measures of ``hf_tsel.evaluation``). Variants are
grouped as: ``old`` (the behaviour before issue 9), ``fix`` (a change justified by the paper,
see docs/methods.md), ``ablation`` (one component removed or switched), ``baseline`` (LogME) and
``sensitivity`` (a default moved by 3x either way; shown, never used to choose a default).

Feature sources (``--benchmark``), read from their caches (nothing is extracted; run the benchmark first):

* ``offline`` (default): the offline benchmark (``hf-tsel benchmark offline``) and
  ``benchmarks/results/offline_ground_truth.csv``; these packaged models have no source images;
* ``zoo``: the zoo benchmark (``hf-tsel benchmark zoo``) and ``zoo_ground_truth.csv``, with each
  trained model's source reference embeddings for the source-mode persistence ratio.

Writes ``<out>/seed_methods_<name>_scores.csv``, ``..._evaluation.csv`` and ``..._summary.md``.

    python benchmarks/seed_methods.py --seeds 0,1                # offline benchmark
    python benchmarks/seed_methods.py --benchmark zoo            # zoo benchmark (--datasets splits the work)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import pandas as pd
import torch

from hf_tsel.groundtruth.evaluate import evaluation_table
from hf_tsel.groundtruth.table import read_ground_truth
from hf_tsel.metrics import score

RESULTS = Path(__file__).resolve().parent / "results"

# name -> (group, registry metric, parameters)
VARIANTS: dict[str, tuple[str, str, dict]] = {
    "logme": ("baseline", "logme", {}),
    "lead (old: svm-normalised, unit 1e6)": ("old", "lead", {"initial": "svm-normalised", "time_unit": 1e6}),
    "lead (fix: svm-platt, pooled unit)": ("fix", "lead", {"initial": "svm-platt"}),
    "lead (default: lda, pooled unit)": ("tuning", "lead", {"initial": "lda"}),
    "lead svm-platt, unit 1e6": ("ablation", "lead", {"initial": "svm-platt", "time_unit": 1e6}),
    "lead svm-normalised, pooled unit": ("ablation", "lead", {"initial": "svm-normalised"}),
    "lead svm-platt, no evolution (t=0)": ("ablation", "lead", {"initial": "svm-platt", "t": 0.0}),
    "lead svm-normalised, no evolution (t=0)": ("ablation", "lead", {"initial": "svm-normalised", "t": 0.0}),
    "lead lda, no evolution (t=0)": ("ablation", "lead", {"initial": "lda", "t": 0.0}),
    "lead svm-platt, t=0.3": ("sensitivity", "lead", {"initial": "svm-platt", "t": 0.3}),
    "lead svm-platt, t=3": ("sensitivity", "lead", {"initial": "svm-platt", "t": 3.0}),
    "itm (old: 500 x 256, full space)": ("old", "itm", {"epochs": None, "batch_size": 256, "span": False}),
    "itm (new: 500 iterations, <= 20 passes, span)": ("fix", "itm", {"epochs": 20.0, "iterations": 500,
                                                                      "batch_size": None}),
    "itm 500 x 256, span": ("ablation", "itm", {"epochs": None, "batch_size": 256}),
    "itm <= 20 passes, full space": ("ablation", "itm", {"span": False}),
    "itm 20 passes at batch 256 (iterations from N)": ("ablation", "itm", {"iterations": None, "batch_size": 256}),
    "itm <= 20 passes, no centre pull": ("ablation", "itm", {"pc_weight": 0.0}),
    "itm 500 x 256, no centre pull": ("ablation", "itm", {"epochs": None, "batch_size": 256, "pc_weight": 0.0,
                                                          "span": False}),
    "itm <= 7 passes": ("sensitivity", "itm", {"epochs": 7.0}),
    "itm <= 60 passes": ("sensitivity", "itm", {"epochs": 60.0}),
    "persistence_ratio_target (old)": ("old", "persistence_ratio_target", {}),
    "persistence_ratio_head (source-head clusters)": ("fix", "persistence_ratio_head", {}),
    "persistence_ratio (source reference set)": ("fix", "persistence_ratio", {}),
}


class Pair(NamedTuple):
    """One model's training-split features on one dataset, and its source reference embeddings if any."""

    dataset: str
    model: str
    features: np.ndarray
    labels: np.ndarray
    source_logits: np.ndarray | None
    reference: tuple[np.ndarray, np.ndarray] | None = None  # (features, source labels)


def offline_pairs(datasets: list[str] | None = None) -> Iterator[Pair]:
    """The offline benchmark's pairs, from the feature cache only (no source images exist for these models)."""
    from hf_tsel.data import load_image_dataset
    from hf_tsel.features import FeatureCache, entry_key
    from hf_tsel.offline.benchmark import DEFAULT_ZOOS, OfflineBenchmarkConfig
    from hf_tsel.offline.benchmark_datasets import load_offline_dataset
    from hf_tsel.zoo import load_zoo

    config, cache = OfflineBenchmarkConfig(), FeatureCache(None)
    for dataset in datasets or config.datasets:
        train_per_class, test_per_class = config.per_class(dataset)
        train, _ = load_offline_dataset(dataset, train_per_class=train_per_class, test_per_class=test_per_class,
                                        seed=config.seed)
        data = load_image_dataset(train, split="train", seed=config.seed)
        labels = np.asarray(data.labels)
        for entry in (e for zoo in DEFAULT_ZOOS for e in load_zoo(zoo)):
            cached = cache.load(entry_key(entry, data.sample_key))
            if cached is None:
                print(f"  {dataset}: no cached features of {entry.name} (run `hf-tsel benchmark offline` first)")
                continue
            logits = None if cached.source_logits is None else cached.source_logits.numpy()
            yield Pair(dataset, entry.name, cached.features.numpy(), labels[cached.positions], logits)


def zoo_pairs(datasets: list[str] | None = None) -> Iterator[Pair]:
    """The zoo benchmark's pairs with the models' source reference embeddings, through its cache
    (``hf-tsel benchmark zoo`` must have run; cached features are read, nothing is re-extracted)."""
    from hf_tsel.groundtruth.features import zoo_features
    from hf_tsel.offline.zoo.benchmark import ZOO_FILE, ZooBenchmarkConfig, _datasets, default_work_dir

    config = ZooBenchmarkConfig(work_dir=default_work_dir())
    for task in datasets or config.tasks:
        train_data, _ = _datasets(task, config)
        train = zoo_features(train_data, config.work_dir / ZOO_FILE, split="train", cache_dir=config.work_dir / "features",
                             seed=config.seed, source_references=True)
        labels = np.asarray(train.data.labels)
        for model, cached in train.features.items():
            logits = None if cached.source_logits is None else cached.source_logits.numpy()
            reference = train.references.get(model)
            yield Pair(task, model, cached.features.numpy(), labels[cached.positions], logits,
                       None if reference is None else (reference.features.numpy(), reference.labels))


def score_variants(pairs, seeds: list[int], done: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (dataset, model, variant, seed) with the score (NaN where a variant does not apply).

    Rows already in ``done`` (a previous scores table) are reused instead of recomputed.
    """
    previous = {} if done is None else {(r.dataset, r.model, r.metric, r.seed): r.score
                                        for r in done.itertuples(index=False)}
    rows = []
    for dataset, model, features, labels, logits, reference in pairs:
        start = time.perf_counter()
        probs = None if logits is None else torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
        for variant, (group, metric, params) in VARIANTS.items():
            if (metric == "persistence_ratio_head" and probs is None) or (metric == "persistence_ratio" and reference is None):
                continue  # no source head / no source images: the variant does not apply to this model
            inputs = reference if metric == "persistence_ratio" else (features, labels)
            for seed in seeds:
                value = previous.get((dataset, model, variant, seed))
                if value is None:
                    try:
                        value = score(metric, *inputs, source_probs=probs, seed=seed, **params)
                    except Exception as exc:  # noqa: BLE001 (record and go on: one failure must not lose the table)
                        print(f"  {dataset}/{model}: {variant} failed: {exc}")
                        value = math.nan
                rows.append({"dataset": dataset, "model": model, "metric": variant, "group": group, "seed": seed,
                             "score": value})
        print(f"  {dataset}/{model}: scored in {time.perf_counter() - start:.1f}s")
    return pd.DataFrame(rows)


# Choices made by evidence: each held-out dataset gets the candidate with the best mean tau on the others.
LEAVE_ONE_DATASET_OUT = {
    "lead initial classifier (svm-platt | lda)": ["lead (fix: svm-platt, pooled unit)", "lead (default: lda, pooled unit)"],
    "lead t (0.3 | 1 | 3, svm-platt)": ["lead svm-platt, t=0.3", "lead (fix: svm-platt, pooled unit)", "lead svm-platt, t=3"],
    "itm passes (7 | 20 | 60)": ["itm <= 7 passes", "itm (new: 500 iterations, <= 20 passes, span)", "itm <= 60 passes"],
}


def leave_one_dataset_out(taus: pd.DataFrame, candidates: list[str]) -> pd.Series:
    """Per held-out dataset, the tau of the candidate with the best mean tau on the other datasets."""
    chosen = {}
    for dataset in taus.columns:
        others = taus.loc[candidates, [c for c in taus.columns if c != dataset]].mean(axis=1)
        chosen[dataset] = taus.loc[others.idxmax(), dataset]
    return pd.Series(chosen)


def summarise(evaluation: pd.DataFrame, name: str) -> str:
    """Markdown: mean weighted tau per variant and protocol, and the per-dataset values."""
    parts = [f"# Seed methods on the {name} benchmark\n",
             "Weighted Kendall tau (mean over seeds per dataset, then over datasets). Groups: old = before issue 9, "
             "fix = faithful fixes (docs/methods.md), tuning = a choice made by evidence (the registry "
             "default of LEAD's initial classifier), tuning (LOO) = that choice made leave-one-dataset-out, ablation = "
             "one component switched, sensitivity = a default moved 3x.\n"]
    for protocol, rows in evaluation.groupby("protocol"):
        table = rows.pivot_table(index=["group", "metric"], columns="dataset", values="weighted_kendall_tau")
        table["mean"] = table.mean(axis=1)
        taus = table.droplevel("group")
        for label, candidates in LEAVE_ONE_DATASET_OUT.items():
            if set(candidates) <= set(taus.index) and len(taus.columns) > 2:  # 'mean' + at least 2 datasets
                row = leave_one_dataset_out(taus.drop(columns="mean"), candidates)
                table.loc[("tuning (LOO)", label), :] = [*row.values, row.mean()]
        order = {"baseline": 0, "old": 1, "fix": 2, "tuning": 3, "tuning (LOO)": 4, "ablation": 5, "sensitivity": 6}
        table = table.reset_index()
        table = table.assign(order=table["group"].map(order)).sort_values(["order", "metric"]).drop(columns="order")
        parts.append(f"\n## Ground truth: {protocol}\n")
        header = "| " + " | ".join(table.columns) + " |"
        parts += [header, "|" + "---|" * len(table.columns)]
        for row in table.itertuples(index=False):
            parts.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", choices=("offline", "zoo"), default="offline",
                        help="whose cached features and ground truth (results/<benchmark>_ground_truth.csv) to use")
    parser.add_argument("--datasets", help="comma-separated subset of the benchmark's datasets (default: all)")
    parser.add_argument("--name", help="name in the output file names (default: the benchmark's)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the stochastic metrics")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true", help="reuse the scores already in the scores file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a loaded shared CPU, 2 threads ran ~7x slower)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    datasets = args.datasets.split(",") if args.datasets else None
    pairs = (zoo_pairs if args.benchmark == "zoo" else offline_pairs)(datasets)
    name = args.name or args.benchmark
    stem = args.out / f"seed_methods_{name}"
    done = pd.read_csv(f"{stem}_scores.csv") if args.resume and Path(f"{stem}_scores.csv").is_file() else None
    scores = score_variants(pairs, seeds, done)
    ground_truth = read_ground_truth(RESULTS / f"{args.benchmark}_ground_truth.csv")
    evaluations = []
    for seed, per_seed in scores.groupby("seed"):
        table = evaluation_table(per_seed, ground_truth)
        evaluations.append(table.assign(seed=seed))
    evaluation = pd.concat(evaluations).merge(scores[["metric", "group"]].drop_duplicates(), on="metric")
    args.out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(f"{stem}_scores.csv", index=False, float_format="%.6g")
    evaluation.to_csv(f"{stem}_evaluation.csv", index=False, float_format="%.4f")
    Path(f"{stem}_summary.md").write_text(summarise(evaluation, name))
    print(Path(f"{stem}_summary.md").read_text())


if __name__ == "__main__":
    main()
