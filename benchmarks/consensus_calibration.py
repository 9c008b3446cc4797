"""How sure is the answer? Calibration of ``p_top1`` and leave-one-model-out stability on the offline benchmark.

For every offline dataset whose train features are all in the feature cache (nothing is
extracted here; run ``hf-tsel benchmark offline`` first) and every ground-truth protocol, over the
models that have ground truth:

* ``hf_tsel.recommendation`` (consensus, and each member alone) with ``calibration=0`` gives the raw
  bootstrap shares; the uniform-shrink weight ``w`` of ``p_top1`` is then fitted leave-one-dataset-out
  (grid 0..1 by 0.05, minimum Brier on the other datasets) and the held-out forecasts are scored;
* Brier score of the forecast for the true best model (multi-class: sum over models of
  ``(p - [model is best])^2``; tied best models share the target), against "all mass on the argmax"
  and "uniform"; plus a reliability table (forecast bins vs how often the model was the best);
* weighted tau and top-1 regret of consensus, members, priors and random;
* leave-one-model-out stability: |tau(zoo without m) - tau(zoo)| for the consensus and LogME.

Usage: ``python benchmarks/consensus_calibration.py`` (writes ``benchmarks/results/consensus_calibration.md``
and ``.csv``). ``--ground-truth`` points at another ground-truth CSV with the same datasets.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hf_tsel.evaluation import top1_regret, weighted_kendall_tau
from hf_tsel.features import FeatureCache, cache_key, model_spec
from hf_tsel.metrics.consensus import CONSENSUS_MEMBERS, consensus_scores
from hf_tsel.offline.benchmark import DEFAULT_ZOOS, OfflineBenchmarkConfig
from hf_tsel.offline.benchmark_datasets import OFFLINE_DATASETS, load_offline_dataset
from hf_tsel.recommendation import recommend
from hf_tsel.zoo import load_zoo

RESULTS = Path(__file__).resolve().parent / "results"
SHRINK_GRID = np.round(np.arange(0, 1.0001, 0.05), 2)
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def cached_train_features(dataset: str) -> tuple[dict, np.ndarray, dict] | None:
    """(features by model, labels, metadata by model) of the benchmark's train sample, or None if not all cached."""
    from hf_tsel.data import load_image_dataset

    train_per_class, test_per_class = OfflineBenchmarkConfig().per_class(dataset)
    train, _ = load_offline_dataset(dataset, train_per_class=train_per_class, test_per_class=test_per_class, seed=0)
    data = load_image_dataset(train, split="train", seed=0)
    cache = FeatureCache(None)
    features, metadata = {}, {}
    for entry in [e for zoo in DEFAULT_ZOOS for e in load_zoo(zoo)]:
        cached = cache.load(cache_key(model_spec(entry), data.sample_key))
        if cached is None:
            return None
        if not np.array_equal(cached.positions, np.arange(data.num_samples)):
            return None
        features[entry.name], metadata[entry.name] = cached.features, entry.metadata
    return features, data.labels, metadata


def brier(forecast: np.ndarray, accuracy: np.ndarray) -> float:
    best = accuracy == accuracy.max()
    return float(((forecast - best / best.sum()) ** 2).sum())


def forecasts(shares: np.ndarray, shrink: float) -> np.ndarray:
    return (1 - shrink) * shares + shrink / len(shares)


def argmax_forecast(scores: np.ndarray) -> np.ndarray:
    top = scores == scores.max()
    return top / top.sum()


def stability(scores: dict[str, float], accuracy: dict[str, float], rescore) -> list[float]:
    """|tau without model m - tau of all| for every m; ``rescore(models)`` scores a sub-zoo."""
    models = list(accuracy)
    full = weighted_kendall_tau([scores[m] for m in models], [accuracy[m] for m in models])
    moves = []
    for left_out in models:
        rest = [m for m in models if m != left_out]
        sub = rescore(rest)
        values = [sub[m] for m in rest]
        if np.ptp([accuracy[m] for m in rest]) == 0:
            continue
        tau = weighted_kendall_tau(values, [accuracy[m] for m in rest]) if np.ptp(values) > 0 else 0.0
        moves.append(abs(tau - full))
    return moves


def run(gt_path: Path, n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    ground_truth = pd.read_csv(gt_path)
    rows, stable, seconds = [], [], {}
    for dataset in sorted(OFFLINE_DATASETS):
        loaded = cached_train_features(dataset)
        if loaded is None:
            print(f"{dataset}: train features not all cached, skipped")
            continue
        features, labels, metadata = loaded
        for protocol, gt in ground_truth[ground_truth["dataset"] == dataset].groupby("protocol"):
            accuracy = gt.set_index("model")["accuracy"].dropna().to_dict()
            models = [m for m in features if m in accuracy]
            if len(models) < 3 or np.ptp([accuracy[m] for m in models]) == 0:
                continue
            zoo = {m: features[m] for m in models}
            acc = np.array([accuracy[m] for m in models])
            base = {"dataset": dataset, "protocol": protocol}
            full = consensus_scores(zoo, labels, priors=metadata)
            for method in ("consensus", *CONSENSUS_MEMBERS):
                start = time.perf_counter()
                table = recommend(zoo, labels, priors=metadata, members=None if method == "consensus" else [method],
                                  n_boot=n_boot, calibration=0.0, known=full.member_scores)
                table = table.set_index("model").loc[models]
                seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - start
                score = table["score"].to_numpy()
                rows.append({**base, "method": method, "tau": weighted_kendall_tau(score, acc),
                             "regret": top1_regret(score, acc), "shares": table["p_top1"].to_numpy(),
                             "argmax": argmax_forecast(score), "accuracy": acc})
            for prior in ("prior:feature_dim", "prior:params"):
                score = np.array([metadata[m][prior.split(":")[1]] for m in models], dtype=float)
                rows.append({**base, "method": prior, "tau": weighted_kendall_tau(score, acc),
                             "regret": top1_regret(score, acc), "shares": argmax_forecast(score),
                             "argmax": argmax_forecast(score), "accuracy": acc})
            uniform = np.full(len(models), 1 / len(models))
            rows.append({**base, "method": "random", "tau": 0.0, "regret": float(acc.max() - acc.mean()),
                         "shares": uniform, "argmax": uniform, "accuracy": acc})
            logme = full.member_scores["logme"]
            stable.append({**base, "method": "consensus",
                           "moves": _consensus_stability(full, zoo, labels, accuracy, models)})
            stable.append({**base, "method": "logme", "moves": stability(
                logme, {m: accuracy[m] for m in models}, lambda rest: {m: logme[m] for m in rest})})
            print(f"{dataset}/{protocol}: done")
    return pd.DataFrame(rows), pd.DataFrame(stable), seconds


def _consensus_stability(full, zoo, labels, accuracy, models) -> list[float]:
    """Leave-one-model-out for the consensus; per-model members are reused, model-set members recomputed."""
    from hf_tsel.metrics import get_metric, score_zoo
    from hf_tsel.metrics.consensus import combine

    def rescore(rest):
        members = {}
        for member, values in full.member_scores.items():
            if get_metric(member).consumes == "model_set":
                members[member] = score_zoo(member, {m: zoo[m] for m in rest}, labels)
            else:
                members[member] = {m: values[m] for m in rest}
        return combine(members, rest, full.rule)

    return stability(full.scores, {m: accuracy[m] for m in models}, rescore)


def calibrate(rows: pd.DataFrame) -> pd.DataFrame:
    """Held-out shrink per dataset (fitted on the other datasets) and the resulting forecasts' Brier."""
    out = []
    for method, group in rows.groupby("method", sort=False):
        for held_out in group["dataset"].unique():
            train = group[group["dataset"] != held_out]
            losses = [np.mean([brier(forecasts(r.shares, w), r.accuracy) for r in train.itertuples()])
                      for w in SHRINK_GRID]
            shrink = float(SHRINK_GRID[int(np.argmin(losses))])
            for r in group[group["dataset"] == held_out].itertuples():
                p = forecasts(r.shares, shrink)
                out.append({"dataset": r.dataset, "protocol": r.protocol, "method": method, "tau": r.tau,
                            "regret": r.regret, "shrink": shrink, "p_true_best": float(p[r.accuracy == r.accuracy.max()].sum()),
                            "brier": brier(p, r.accuracy), "brier_argmax": brier(r.argmax, r.accuracy),
                            "brier_uniform": brier(np.full(len(p), 1 / len(p)), r.accuracy),
                            "forecast": p, "accuracy": r.accuracy})
    return pd.DataFrame(out)


def fitted_shrink(rows: pd.DataFrame, method: str = "consensus") -> float:
    group = rows[rows["method"] == method]
    losses = [np.mean([brier(forecasts(r.shares, w), r.accuracy) for r in group.itertuples()]) for w in SHRINK_GRID]
    return float(SHRINK_GRID[int(np.argmin(losses))])


def reliability(calibrated: pd.DataFrame, method: str = "consensus") -> pd.DataFrame:
    forecast = np.concatenate(list(calibrated.loc[calibrated["method"] == method, "forecast"]))
    outcome = np.concatenate([(a == a.max()) / (a == a.max()).sum()
                              for a in calibrated.loc[calibrated["method"] == method, "accuracy"]])
    bins = pd.cut(forecast, BINS, include_lowest=True)
    frame = pd.DataFrame({"bin": bins, "forecast": forecast, "best": outcome})
    return frame.groupby("bin", observed=True).agg(n=("best", "size"), mean_p_top1=("forecast", "mean"),
                                                   observed_best=("best", "mean")).reset_index()


def _markdown(frame: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) and not math.isnan(v) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)])


def report(calibrated: pd.DataFrame, stable: pd.DataFrame, shrink: float, n_boot: int, seconds: dict) -> str:
    per_task = calibrated.pivot_table(index=["dataset", "protocol"], columns="method", values="tau").reset_index()
    summary = calibrated.groupby("method", sort=False).agg(
        mean_tau=("tau", "mean"), worst_tau=("tau", "min"), mean_regret=("regret", "mean"),
        brier=("brier", "mean"), brier_argmax=("brier_argmax", "mean"), brier_uniform=("brier_uniform", "mean"),
        mean_p_true_best=("p_true_best", "mean")).reset_index()
    lomo = stable.assign(mean_move=stable["moves"].map(np.mean), max_move=stable["moves"].map(np.max)).groupby(
        "method").agg(mean_abs_tau_change=("mean_move", "mean"), max_abs_tau_change=("max_move", "max")).reset_index()
    return "\n\n".join([
        "# How sure is the answer? (offline benchmark, generated by benchmarks/consensus_calibration.py)",
        f"Tasks: {len(per_task)} (dataset x ground-truth protocol, models with ground truth only); "
        f"bootstrap {n_boot} resamples. p_top1 shrink towards uniform fitted leave-one-dataset-out "
        f"(held-out Brier below); fitted on all tasks: **{shrink:.2f}**. Priors and random have no bootstrap: "
        "their forecast is all mass on their argmax (priors) or uniform (random).",
        "## Mean over tasks (held-out calibration)", _markdown(summary),
        "## Weighted tau per task", _markdown(per_task),
        "## Reliability of the consensus p_top1 (held-out)", _markdown(reliability(calibrated)),
        "## Leave-one-model-out stability (|tau change| when one model is removed)", _markdown(lomo),
        "Seconds spent in recommend() per method, all tasks (shared, loaded 2-core CPU): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()),
    ]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ground-truth", type=Path, default=RESULTS / "offline_ground_truth.csv")
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)  # many small problems on a shared CPU; see hf_tsel.recommendation._one_thread
    rows, stable, seconds = run(args.ground_truth, args.n_boot)
    calibrated = calibrate(rows)
    shrink = fitted_shrink(rows)
    text = report(calibrated, stable, shrink, args.n_boot, seconds)
    (RESULTS / "consensus_calibration.md").write_text(text, encoding="utf-8")
    calibrated.drop(columns=["forecast", "accuracy"]).to_csv(RESULTS / "consensus_calibration.csv", index=False,
                                                             float_format="%.4f")
    print(text)


if __name__ == "__main__":
    main()
