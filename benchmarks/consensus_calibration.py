"""How sure is the answer? Calibration of P(best) on both benchmarks, fitted leave-one-benchmark-out.

For every task (benchmark, dataset, ground-truth protocol) whose train features are in the
benchmarks' caches (nothing is extracted here: run ``hf-tsel benchmark offline`` and
``hf-tsel benchmark zoo`` first), over the models with ground truth, :func:`hf_tsel.recommend`
with the answer of the task's goal (``finetune`` for fine-tune ground truths, ``linear-probe`` for
linear-probe ones) and ``calibration=None`` gives each model's consensus score and its raw
bootstrap share of the #1 spot. Forecasts of "this model is truly the best after training":

* ``bootstrap``: the raw share (sampling noise only: the old P(best) before any calibration);
* ``shrink``: the share mixed with uniform, ``(1 - w) share + w / M`` (the previous calibration);
* ``softmax(score)``: ``softmax_m(a z_m)``, ``z`` the consensus standardised over the models;
* ``softmax(score, share)``: ``softmax_m(a z_m + b log(share_m + 1 / (2 n_boot)))``;
* ``softmax(score, share, agreement)``: as above with ``a`` scaled by ``1 + c (agreement - 1/2)``,
  the share of member metrics whose own #1 is the consensus #1;
* ``softmax(score) over resamples``: ``softmax_m(a z_m)`` averaged over the bootstrap resamples of the
  consensus (``z`` of each resample): a lead that the resamples do not keep is not trusted.

Besides each task's whole zoo, a few seeded 2- and 3-model zoos drawn from it are tasks too: users often
compare a few backbones, and over two models ``z`` is always -1 and +1, whatever the gap.

Each forecast's parameters minimise the mean Brier score on the training tasks; per goal, they are
fitted on one benchmark's tasks and scored on the other's (leave-one-benchmark-out), and per benchmark against "all
mass on the consensus #1" and "uniform". Brier: ``sum_m (p_m - [m is best])^2``, tied best models
sharing the target. Per goal, the forecast with the lowest worst held-out Brier (the mean over one benchmark's
whole zoos, or over its small zoos, whichever is worse) is that goal's
entry of :data:`hf_tsel.recommendation.P_BEST_CALIBRATIONS`, with the parameters fitted on both benchmarks.

Usage: ``python benchmarks/consensus_calibration.py`` writes ``benchmarks/results/consensus_calibration.{md,csv}``.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from scipy import optimize

from hf_tsel.groundtruth.table import GOAL_OF_PROTOCOL, read_ground_truth
from hf_tsel.recommendation import PBestCalibration, recommend

RESULTS = Path(__file__).resolve().parent / "results"
BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
SMALL_ZOO_SIZES = (2, 3)
SMALL_ZOOS_PER_SIZE = 3


def benchmark_tasks(benchmark: str) -> Iterator[tuple[str, dict, np.ndarray, dict]]:
    """(dataset, features by model, labels, metadata by model) of a benchmark's cached train samples."""
    from seed_methods import offline_pairs, zoo_pairs

    from hf_tsel.zoo import load_zoo

    zoos = ("offline", "offline-benchmark") if benchmark == "offline" else (str(zoo_work_dir() / "zoo.yaml"),)
    metadata = {e.name: e.metadata for zoo in zoos for e in load_zoo(zoo)}
    pairs = offline_pairs() if benchmark == "offline" else zoo_pairs()
    for dataset, group in itertools.groupby(pairs, key=lambda pair: pair.dataset):
        group = list(group)
        same = [p for p in group if np.array_equal(p.labels, group[0].labels)]  # recommend() needs one sample
        yield dataset, {p.model: p.features for p in same}, group[0].labels, metadata


def zoo_work_dir() -> Path:
    from hf_tsel.offline.zoo.benchmark import default_work_dir

    return default_work_dir()


def collect(n_boot: int) -> pd.DataFrame:
    """One row per task: the consensus of the task's goal (its ground truth's kind of training), raw bootstrap
    shares, member agreement and accuracies of its models."""
    rows = []
    for benchmark in ("offline", "zoo"):
        ground_truth = read_ground_truth(RESULTS / f"{benchmark}_ground_truth.csv")
        for dataset, features, labels, metadata in benchmark_tasks(benchmark):
            answers = {}  # one recommend() per goal and model set: protocols of one goal with the same models share it
            for protocol, gt in ground_truth[ground_truth["dataset"] == dataset].groupby("protocol"):
                goal = GOAL_OF_PROTOCOL[protocol]
                accuracy = gt.set_index("model")["accuracy"].dropna().to_dict()
                models = [m for m in features if m in accuracy]
                if len(models) < 3 or np.ptp([accuracy[m] for m in models]) == 0:
                    continue
                for zoo in [models, *small_zoos(models, seed=len(rows))]:
                    if np.ptp([accuracy[m] for m in zoo]) == 0:
                        continue
                    key = (goal, tuple(zoo))
                    if key not in answers:
                        answers[key] = recommend({m: features[m] for m in zoo}, labels, priors=metadata, goal=goal,
                                                 n_boot=n_boot, calibration=None)
                    table = answers[key].set_index("model").loc[zoo]
                    rows.append({"goal": goal, "benchmark": benchmark, "dataset": dataset, "protocol": protocol,
                                 "models": zoo, "zoo": "whole" if zoo is models else "2-3 models",
                                 "score": table["score"].to_numpy(), "share": table["p_top1"].to_numpy(),
                                 "resamples": answers[key].attrs["bootstrap_scores"][zoo].to_numpy(),
                                 "agreement": answers[key].attrs["agreement"],
                                 "accuracy": np.array([accuracy[m] for m in zoo])})
                print(f"{benchmark} {dataset}/{protocol}: {len(models)} models", flush=True)
    return pd.DataFrame(rows)


def small_zoos(models: list[str], *, seed: int) -> list[list[str]]:
    """A few random 2- and 3-model zoos drawn from a task's models (seeded): a user often compares just a few
    backbones, and standardised over so few models the consensus no longer shows how large a lead is."""
    rng = np.random.default_rng(seed)
    return [sorted(rng.choice(models, size, replace=False).tolist(), key=models.index)
            for size in SMALL_ZOO_SIZES for _ in range(SMALL_ZOOS_PER_SIZE)]


def brier(forecast: np.ndarray, accuracy: np.ndarray) -> float:
    best = accuracy == accuracy.max()
    return float(((forecast - best / best.sum()) ** 2).sum())


def _calibrated(row, params: tuple[float, ...], n_boot: int, *, resampled: bool = False) -> np.ndarray:
    """The package's own map (``hf_tsel.recommendation.PBestCalibration``) with parameters (a[, b[, c]])."""
    return PBestCalibration(*params, resampled=resampled)(row.score, row.share, agreement=row.agreement,
                                                          n_boot=n_boot, resamples=row.resamples)


# name -> (forecast(row, params, n_boot), initial params); the softmax forecasts are PBestCalibration itself, so
# the fitted parameters mean exactly what the package computes.
FORECASTS: dict[str, tuple[Callable, tuple[float, ...]]] = {
    "bootstrap": (lambda r, p, n: r.share, ()),
    "shrink": (lambda r, p, n: (1 - np.clip(p[0], 0, 1)) * r.share + np.clip(p[0], 0, 1) / len(r.share), (0.1,)),
    "softmax(score)": (_calibrated, (1.0,)),
    "softmax(score, share)": (_calibrated, (1.0, 0.5)),
    "softmax(score, share, agreement)": (_calibrated, (1.0, 0.5, 0.0)),
    "softmax(score) over resamples": (lambda r, p, n: _calibrated(r, p, n, resampled=True), (1.0,)),
}


def fit(name: str, tasks: pd.DataFrame, n_boot: int) -> tuple[float, ...]:
    """Parameters of a forecast minimising the mean Brier score over ``tasks``."""
    forecast, start = FORECASTS[name]
    if not start:
        return ()

    def loss(params):
        return np.mean([brier(forecast(r, params, n_boot), r.accuracy) for r in tasks.itertuples()])

    fitted = optimize.minimize(loss, np.array(start), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7})
    return tuple(float(v) for v in fitted.x)


def held_out(tasks: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """Every forecast fitted on the other benchmark's tasks of the same goal and scored on this one, per task."""
    rows = []
    for (goal, benchmark), test in tasks.groupby(["goal", "benchmark"]):
        train = tasks[(tasks["goal"] == goal) & (tasks["benchmark"] != benchmark)]
        for name, (forecast, _) in FORECASTS.items():
            params = fit(name, train, n_boot)
            for r in test.itertuples():
                p = forecast(r, params, n_boot)
                best = r.accuracy == r.accuracy.max()
                top = r.score == r.score.max()
                rows.append({"goal": goal, "benchmark": benchmark, "dataset": r.dataset, "protocol": r.protocol,
                             "zoo": r.zoo, "forecast": name, "params": " ".join(f"{v:.3f}" for v in params),
                             "brier": brier(p, r.accuracy), "brier_argmax": brier(top / top.sum(), r.accuracy),
                             "brier_uniform": brier(np.full(len(p), 1 / len(p)), r.accuracy),
                             "p_first": float(p[np.argmax(r.score)]), "first_is_best": bool(best[np.argmax(r.score)]),
                             "p": p, "best": best / best.sum()})
    return pd.DataFrame(rows)


def reliability(rows: pd.DataFrame) -> pd.DataFrame:
    """Forecast bins against how often the model was the best, per benchmark (all models of every task)."""
    parts = []
    for benchmark, group in rows.groupby("benchmark"):
        forecast, outcome = np.concatenate(list(group["p"])), np.concatenate(list(group["best"]))
        frame = pd.DataFrame({"bin": pd.cut(forecast, BINS, include_lowest=True), "p": forecast, "best": outcome})
        table = frame.groupby("bin", observed=True).agg(n=("best", "size"), mean_forecast=("p", "mean"),
                                                        observed_best=("best", "mean")).reset_index()
        parts.append(table.assign(benchmark=benchmark)[["benchmark", "bin", "n", "mean_forecast", "observed_best"]])
    return pd.concat(parts)


def _markdown(frame: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) and not math.isnan(v) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)])


def choose(rows: pd.DataFrame) -> str:
    """The forecast with the lowest worst mean held-out Brier score over the benchmarks and zoo kinds (whole task
    zoos; 2-3 models drawn from them)."""
    worst = rows.groupby(["forecast", "benchmark", "zoo"])["brier"].mean().groupby("forecast").max()
    return str(worst.idxmin())


def report(tasks: pd.DataFrame, rows: pd.DataFrame, chosen: dict[str, str], params: dict[str, tuple],
           n_boot: int) -> str:
    parts = [
        "# How sure is the answer? (generated by benchmarks/consensus_calibration.py)",
        f"Tasks: {len(tasks)} ({', '.join(f'{g} on {b}: {n}' for (g, b), n in tasks.groupby(['goal', 'benchmark']).size().items())}); "
        f"bootstrap {n_boot} resamples; each goal's answer (`hf_tsel.metrics.consensus.ANSWERS`) on the tasks whose "
        "ground truth is that goal's kind of training; forecasts fitted on the other benchmark's tasks of the same "
        "goal (leave-one-benchmark-out). `first_is_best`: how often the answer's #1 was the true best; "
        "`mean_p_first`: the P(best) it got.",
        "In code (`hf_tsel.recommendation.P_BEST_CALIBRATIONS`): " + ", ".join(
            f'"{goal}": PBestCalibration({", ".join(f"{v:.4f}" for v in params[goal])}'
            f'{", resampled=True" if name.endswith("over resamples") else ""})' for goal, name in chosen.items()) + ".",
    ]
    for goal, name in chosen.items():
        goal_rows = rows[rows["goal"] == goal]
        summary = goal_rows.groupby(["benchmark", "zoo", "forecast"], sort=False).agg(
            tasks=("brier", "size"), brier=("brier", "mean"), brier_argmax=("brier_argmax", "mean"),
            brier_uniform=("brier_uniform", "mean"), mean_p_first=("p_first", "mean"),
            first_is_best=("first_is_best", "mean")).reset_index()
        chosen_rows = goal_rows[goal_rows["forecast"] == name]
        wrong = chosen_rows[~chosen_rows["first_is_best"]]
        parts += [
            f"## Goal {goal}: held-out Brier score per benchmark (lower is better)", _markdown(summary),
            f"**Chosen:** `{name}` (lowest worst held-out Brier over benchmarks and zoo kinds); parameters fitted on both benchmarks' "
            f"{goal} tasks: {', '.join(f'{v:.4f}' for v in params[goal]) or 'none'}.",
            f"Where the answer's #1 was not the true best ({len(wrong)} of {len(chosen_rows)} tasks), the chosen "
            f"forecast gave it P(best) {wrong['p_first'].mean():.2f} on average (held out); where it was, "
            f"{chosen_rows.loc[chosen_rows['first_is_best'], 'p_first'].mean():.2f}.",
            f"### Goal {goal}: reliability of the chosen forecast (held out; every model of every task)",
            _markdown(reliability(chosen_rows)),
            f"### Goal {goal}: per task (chosen forecast, held out)",
            _markdown(chosen_rows[chosen_rows["zoo"] == "whole"][["benchmark", "dataset", "protocol", "params", "brier", "brier_argmax",
                                   "brier_uniform", "p_first", "first_is_best"]]),
        ]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)  # many small problems; see hf_tsel.metrics._common.one_cpu_thread
    tasks = collect(args.n_boot)
    rows = held_out(tasks, args.n_boot)
    chosen = {goal: choose(rows[rows["goal"] == goal]) for goal in sorted(tasks["goal"].unique())}
    params = {goal: fit(name, tasks[tasks["goal"] == goal], args.n_boot) for goal, name in chosen.items()}
    text = report(tasks, rows, chosen, params, args.n_boot)
    (RESULTS / "consensus_calibration.md").write_text(text, encoding="utf-8")
    rows.drop(columns=["p", "best"]).to_csv(RESULTS / "consensus_calibration.csv", index=False, float_format="%.4f")
    print(text)


if __name__ == "__main__":
    main()
