"""The race (:mod:`hf_tsel.racing`) replayed on the zoo benchmark from recorded learning curves.

The zoo benchmark's fine-tunes of training seeds other than 0 record the validation accuracy after
every epoch (3 epochs, cosine schedule; :mod:`.benchmark`). A race round that trains a model to
``e`` epochs in total reads that model's validation accuracy at epoch ``e`` of the recorded run (rounds
are capped at the recorded 3 epochs; the real race anneals its own, shorter schedule instead), keeps the
better half by :func:`hf_tsel.racing.by_validation` and charges the epochs it trained.

Compute is counted in model-epochs weighted by each model's cost per epoch (median seconds per epoch
over all its recorded runs, which is robust to the shared machine's load spikes), as a fraction of
fine-tuning every model with the full protocol (every learning rate, every epoch) once. The pick of
every method is judged against the mean test accuracy of the *other* seeds, so the race's own
training run never grades itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...defaults import ANSWER_METRIC
from ...racing import by_validation, halving_schedule


def read_curves(work_dir: Path, *, epochs: int, learning_rates: Sequence[float], seeds: Sequence[int]) -> pd.DataFrame:
    """One row per (dataset, model, seed, lr): the per-epoch validation accuracies and seconds of a recorded run
    of the zoo benchmark's fine-tune protocol (run folders under ``work_dir/finetune``)."""
    rows = []
    for config_path in sorted((work_dir / "finetune").glob("*/*/*/config.json")):
        config = json.loads(config_path.read_text())
        if (config["epochs"] != epochs or config["seeds"][0] not in seeds
                or config["grid"]["learning_rates"] != list(learning_rates)):
            continue
        run_dir = config_path.parent
        for result_path in sorted(run_dir.glob("*/result.json")):
            point = json.loads(result_path.read_text())
            curve = point.get("validation_history") or []
            if len(curve) != epochs or any(value is None for value in curve):
                continue  # seed-0 runs record only the last epoch
            rows.append({"dataset": run_dir.parent.parent.name, "model": run_dir.parent.name, "seed": point["seed"],
                         "lr": point["lr"], "curve": curve, "seconds": point["seconds"],
                         "mtime": result_path.stat().st_mtime})
    frame = pd.DataFrame(rows, columns=["dataset", "model", "seed", "lr", "curve", "seconds", "mtime"])
    # a rebuilt zoo leaves older run folders of the same settings: the newest run of each point counts
    return frame.sort_values("mtime").drop_duplicates(["dataset", "model", "seed", "lr"], keep="last").drop(
        columns="mtime").reset_index(drop=True)


def epoch_costs(curves: pd.DataFrame) -> pd.Series:
    """Per model: median seconds per training epoch over every recorded run."""
    per_epoch = curves["seconds"] / curves["curve"].map(len)
    return per_epoch.groupby(curves["model"]).median()


def replay(ranking: Sequence[str], curves: dict[str, list[float]], first_epochs: int) -> tuple[str, dict[str, int]]:
    """Race ``ranking`` (best first) on recorded ``curves``; returns the winner and the epochs each model trained."""
    horizon = min(len(c) for c in curves.values())
    alive, trained = list(ranking), dict.fromkeys(ranking, 0)
    rounds = halving_schedule(len(ranking), first_epochs)
    for index, round_ in enumerate(rounds):
        until = min(round_.epochs, horizon)
        for model in alive:
            trained[model] = until
        accuracies = {m: curves[m][until - 1] for m in alive}
        keep = 1 if index == len(rounds) - 1 else math.ceil(round_.models / 2)
        alive = by_validation(accuracies, ranking)[:keep]
    return alive[0], trained


def _truth_without(truth: pd.DataFrame, seed: int) -> pd.Series:
    """Per model: mean test accuracy over the seeds other than ``seed``."""
    others = truth[truth["seed"] != seed]
    return others.groupby("model")["accuracy"].mean()


def simulate(scores: pd.DataFrame, truth: pd.DataFrame, curves: pd.DataFrame, *, lr: float,
             ks: Sequence[int] = (2, 3, 4, 8), first_epochs: Sequence[int] = (1, 2, 3), metric: str = ANSWER_METRIC,
             full_cost_lrs: int = 2, random_draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per (task, curve seed, method): the pick, its regret and whether it is the best model, and the compute fraction.

    ``scores``: ``dataset, model, metric, score`` (the ranking); ``truth``: per-seed test accuracies
    (``dataset, model, seed, accuracy``); ``curves``: :func:`read_curves`. Methods: ``metric`` (the
    ranking's top model, no training), ``race`` (its top K, for every K and first-round length),
    ``random race`` (K random models in random order, the same schedule: what the metric adds at equal
    compute; the mean over ``random_draws`` draws) and ``halving`` (every model, no metric, ties broken at
    random).
    """
    cost = epoch_costs(curves)
    rng = np.random.default_rng(seed)
    rows = []
    for (task, curve_seed), group in curves[curves["lr"] == lr].groupby(["dataset", "seed"]):
        by_model = dict(zip(group["model"], group["curve"]))
        accuracy = _truth_without(truth[truth["dataset"] == task], curve_seed)
        ranked = scores[(scores["dataset"] == task) & (scores["metric"] == metric)].dropna(subset=["score"])
        ranking = [m for m in ranked.sort_values("score", ascending=False, kind="stable")["model"]
                   if m in by_model and m in accuracy.index]
        if len(ranking) < len(accuracy):
            continue  # a seed still being trained: only complete (task, seed) pairs count
        full = full_cost_lrs * len(next(iter(by_model.values()))) * cost[ranking].sum()

        def row(method: str, k: int, first: int, pick: str, trained: dict[str, int]) -> dict:
            return {"dataset": task, "seed": curve_seed, "method": method, "k": k, "first_epochs": first,
                    "pick": pick, "regret": float(accuracy[ranking].max() - accuracy[pick]),
                    "best": bool(accuracy[pick] == accuracy[ranking].max()),
                    "compute": float(sum(cost[m] * e for m, e in trained.items()) / full)}

        rows.append(row(metric, 1, 0, ranking[0], {}))
        unranked = [ranking[i] for i in rng.permutation(len(ranking))]  # metric-free: ties go to a random model
        for first in first_epochs:
            rows.append(row("halving", len(ranking), first, *replay(unranked, by_model, first)))
            for k in ks:
                rows.append(row("race", k, first, *replay(ranking[:k], by_model, first)))
                draws = [row("random race", k, first, *replay(
                    [ranking[i] for i in rng.choice(len(ranking), k, replace=False)], by_model, first))
                    for _ in range(random_draws)]
                rows.append({**draws[0], "pick": None, **{key: float(np.mean([d[key] for d in draws]))
                                                          for key in ("regret", "best", "compute")}})
    return pd.DataFrame(rows)


def summary_table(simulated: pd.DataFrame, *, samples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean over tasks and curve seeds per (method, K, first-round epochs), cheapest first within a method, with a
    95 % percentile-bootstrap interval of the mean regret over the (task, seed) runs."""
    rng = np.random.default_rng(seed)
    rows = []
    for (method, k, first), group in simulated.groupby(["method", "k", "first_epochs"], sort=False):
        regrets = group["regret"].to_numpy(float)
        means = regrets[rng.integers(0, len(regrets), size=(samples, len(regrets)))].mean(axis=1)
        rows.append({"method": method, "k": k, "first_epochs": first, "compute": group["compute"].mean(),
                     "regret": regrets.mean(), "regret_ci_low": np.percentile(means, 2.5),
                     "regret_ci_high": np.percentile(means, 97.5), "p_best": group["best"].mean(),
                     "runs": len(group)})
    return pd.DataFrame(rows).sort_values(["method", "k", "compute"], kind="stable").reset_index(drop=True)
