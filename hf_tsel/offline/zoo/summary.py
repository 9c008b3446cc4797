"""Statistics and the Markdown summary of the zoo benchmark.

Tasks are the unit of replication: confidence intervals resample target tasks with replacement
(percentile bootstrap, Efron & Tibshirani 1993, ch. 13), and two metrics are compared by a paired
bootstrap of their per-task weighted-tau differences. A difference is called significant when its
95% interval excludes zero.

The noise ceiling of a seeded protocol (:func:`noise_ceiling`) is, per task, the mean weighted tau
between the model rankings of two training seeds, over every pair of seeds: how well one run of the
protocol predicts another. Every table shows it as a ``ceiling`` row and each metric's mean tau as a
fraction of the mean ceiling.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from itertools import combinations, permutations

from ...evaluation import kendall_tau, spearman_rho, top1_regret, weighted_kendall_tau
from ...groundtruth.table import ground_truth_rows, seed_rows
from ..benchmark import _markdown

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95


def _bootstrap_means(values: np.ndarray, rng: np.random.Generator, samples: int) -> np.ndarray:
    picks = rng.integers(0, len(values), size=(samples, len(values)))
    return values[picks].mean(axis=1)


def _interval(means: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def noise_ceiling(ground_truth: pd.DataFrame, protocol: str = "full") -> pd.DataFrame:
    """Per task: seeds, seed pairs, the mean weighted tau over seed pairs (``ceiling``) and the mean top-1
    regret of one seed's best model measured on another seed (``ceiling_regret``); empty without seed rows."""
    rows = seed_rows(ground_truth)
    rows = rows[rows["protocol"] == protocol]
    out = []
    for task, group in rows.groupby("dataset"):
        counts = group.groupby("seed")["model"].nunique()
        complete = group[group["seed"].isin(counts[counts == counts.max()].index)]  # a seed still running is left out
        table = complete.pivot_table(index="model", columns="seed", values="accuracy", aggfunc="first").dropna()
        seeds = list(table.columns)
        if len(seeds) < 2:
            continue
        taus = [weighted_kendall_tau(table[a], table[b]) for a, b in combinations(seeds, 2)]
        regrets = [top1_regret(table[a].to_numpy(), table[b].to_numpy()) for a, b in permutations(seeds, 2)]
        out.append({"dataset": task, "models": len(table), "seeds": len(seeds), "pairs": len(taus),
                    "ceiling": float(np.nanmean(taus)), "min_pair": float(np.nanmin(taus)),
                    "ceiling_regret": float(np.mean(regrets))})
    return pd.DataFrame(out, columns=["dataset", "models", "seeds", "pairs", "ceiling", "min_pair", "ceiling_regret"])


def _ceiling_row(ceiling: pd.DataFrame, *, seed: int, samples: int) -> dict[str, Any]:
    values = ceiling["ceiling"].to_numpy(float)
    low, high = _interval(_bootstrap_means(values, np.random.default_rng(seed), samples))
    return {"metric": "ceiling", "tasks": len(values), "mean_tau": float(values.mean()), "ci_low": low,
            "ci_high": high, "min_tau": float(values.min()),
            "mean_top1_regret": float(ceiling["ceiling_regret"].mean())}


def with_ceiling(table: pd.DataFrame, ceiling: pd.DataFrame | None, *, seed: int = 0,
                 samples: int = BOOTSTRAP_SAMPLES) -> pd.DataFrame:
    """A :func:`metric_table` with the ``ceiling`` row first and every mean tau as a fraction of the ceiling's
    (``of_ceiling``); without a measured ceiling the row says so (NaNs)."""
    if ceiling is None or ceiling.empty:
        row = {"metric": "ceiling (not measured: one run per model)"}
        return pd.concat([pd.DataFrame([row]), table.assign(of_ceiling=math.nan)], ignore_index=True)
    row = _ceiling_row(ceiling, seed=seed, samples=samples)
    return pd.concat([pd.DataFrame([row]), table], ignore_index=True).assign(
        of_ceiling=lambda t: t["mean_tau"] / row["mean_tau"])


def tau_matrix(evaluation: pd.DataFrame, protocol: str, measure: str = "weighted_kendall_tau") -> pd.DataFrame:
    """Metric x task table of one measure for one ground-truth protocol."""
    rows = evaluation[evaluation["protocol"] == protocol]
    return rows.pivot_table(index="metric", columns="dataset", values=measure, aggfunc="first")


def metric_table(evaluation: pd.DataFrame, protocol: str, *, seed: int = 0,
                 samples: int = BOOTSTRAP_SAMPLES) -> pd.DataFrame:
    """Per metric: mean / min weighted tau over tasks, its bootstrap CI, mean top-1 regret; best mean first."""
    taus = tau_matrix(evaluation, protocol)
    regrets = tau_matrix(evaluation, protocol, "top1_regret")
    rows = []
    for metric, values in taus.iterrows():
        finite = values.dropna().to_numpy(float)
        row: dict[str, Any] = {"metric": metric, "tasks": len(finite), "mean_tau": math.nan, "ci_low": math.nan,
                               "ci_high": math.nan, "min_tau": math.nan,
                               "mean_top1_regret": float(regrets.loc[metric].mean())}
        if len(finite):
            low, high = _interval(_bootstrap_means(finite, np.random.default_rng(seed), samples))
            row.update(mean_tau=float(finite.mean()), ci_low=low, ci_high=high, min_tau=float(finite.min()))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("mean_tau", ascending=False, na_position="last").reset_index(drop=True)


def paired_differences(evaluation: pd.DataFrame, protocol: str, *, seed: int = 0,
                       samples: int = BOOTSTRAP_SAMPLES) -> pd.DataFrame:
    """Every ordered pair (a, b) with a ranked above b: mean tau difference over their common tasks,
    its paired-bootstrap CI and whether it excludes zero."""
    taus = tau_matrix(evaluation, protocol)
    order = metric_table(evaluation, protocol, seed=seed, samples=1)["metric"].tolist()
    rows = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            both = taus.loc[[a, b]].T.dropna()
            if len(both) < 2:
                continue
            diffs = (both[a] - both[b]).to_numpy(float)
            low, high = _interval(_bootstrap_means(diffs, np.random.default_rng(seed), samples))
            rows.append({"metric_a": a, "metric_b": b, "tasks": len(diffs), "mean_difference": float(diffs.mean()),
                         "ci_low": low, "ci_high": high, "significant": bool(low > 0 or high < 0)})
    return pd.DataFrame(rows, columns=["metric_a", "metric_b", "tasks", "mean_difference", "ci_low", "ci_high",
                                       "significant"])


def protocol_agreement(ground_truth: pd.DataFrame, first: str = "linear-probe", second: str = "full") -> pd.DataFrame:
    """Per task: rank correlation between the models' accuracies under two ground-truth protocols."""
    rows = []
    for task, group in ground_truth.groupby("dataset"):
        table = group.pivot_table(index="model", columns="protocol", values="accuracy", aggfunc="first")
        if first not in table or second not in table:
            continue
        both = table[[first, second]].dropna()
        if len(both) < 2:
            continue
        a, b = both[first].to_numpy(float), both[second].to_numpy(float)
        rows.append({"dataset": task, "models": len(both), "kendall_tau": kendall_tau(a, b),
                     "spearman_rho": spearman_rho(a, b), "weighted_kendall_tau": weighted_kendall_tau(a, b),
                     f"best_{first}": both[first].idxmax(), f"best_{second}": both[second].idxmax()})
    return pd.DataFrame(rows)


def headline_table(evaluation: pd.DataFrame, protocols: Sequence[str] = ("full", "linear-probe"), *,
                   seed: int = 0, ceilings: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per metric (the noise ceiling first): mean weighted tau [95% CI], as a fraction of the ceiling
    where one is measured, and mean top-1 regret under each protocol."""
    columns = {}
    for protocol in protocols:
        ceiling = (ceilings or {}).get(protocol)
        table = with_ceiling(metric_table(evaluation, protocol, seed=seed), ceiling, seed=seed).set_index("metric")
        table = table.rename(index=lambda m: "ceiling" if m.startswith("ceiling") else m)
        columns[f"τw {protocol} [95% CI]"] = table.apply(
            lambda r: "-" if math.isnan(r["mean_tau"]) else f"{r['mean_tau']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            axis=1)
        if ceiling is not None and not ceiling.empty:
            columns[f"of ceiling {protocol}"] = table["of_ceiling"]
        columns[f"regret {protocol}"] = table["mean_top1_regret"]
    frame = pd.DataFrame(columns)
    order = ["ceiling", *metric_table(evaluation, protocols[0], seed=seed, samples=1)["metric"]]
    return frame.reindex(order).rename_axis("metric").reset_index()


def _ceiling_text(ceilings: dict[str, pd.DataFrame]) -> str:
    lines = []
    for protocol, ceiling in ceilings.items():
        if ceiling.empty:
            lines.append(f"No noise ceiling for the {protocol} protocol: it is one deterministic run per model.\n")
            continue
        low, high = int(ceiling["seeds"].min()), int(ceiling["seeds"].max())
        seeds = str(low) if low == high else f"{low}-{high}"
        lines.append(f"Noise ceiling of the {protocol} ground truth: per task, the mean weighted tau between the "
                     f"model rankings of two training seeds ({seeds} seeds per task, every pair), and the mean top-1 regret of one seed's best model on another "
                     "seed. The ground truth itself is the mean over seeds, which is less noisy than one seed, so a "
                     "method can exceed the ceiling.\n")
        lines.append(_markdown(ceiling))
    return "\n".join(lines)


def _significance_text(table: pd.DataFrame, pairs: pd.DataFrame) -> str:
    if table.empty or pairs.empty:
        return "Too few tasks for paired comparisons.\n"
    best = table["metric"].iloc[0]
    versus_best = pairs[pairs["metric_a"] == best]
    tied = versus_best[~versus_best["significant"]]["metric_b"].tolist()
    lines = [f"Paired bootstrap over tasks ({BOOTSTRAP_SAMPLES} resamples, {LEVEL:.0%} intervals): "
             f"{int(pairs['significant'].sum())} of {len(pairs)} metric pairs differ significantly.",
             f"Not significantly worse than the best metric ({best}): "
             f"{', '.join(tied) if tied else 'none'}.\n"]
    return "\n".join(lines)


def markdown_summary(models: pd.DataFrame, ground_truth: pd.DataFrame, evaluation: pd.DataFrame,
                     timings: dict[str, float], *, protocols: Sequence[str] = ("full", "linear-probe"),
                     seed: int = 0) -> str:
    """The zoo_summary.md text: zoo, tasks, per-metric tables with CIs, significance, protocol agreement."""
    tasks = sorted(ground_truth["dataset"].unique())
    ceilings = {protocol: noise_ceiling(ground_truth, protocol) for protocol in protocols}
    ground_truth = ground_truth_rows(ground_truth)
    parts = [f"# Zoo benchmark: {len(models)} models x {len(tasks)} target tasks\n",
             "Produced by `hf-tsel benchmark zoo` (see docs/groundtruth.md). Weighted tau: weighted Kendall tau "
             "between metric scores and ground-truth accuracies over all models of a task; CI: "
             f"{LEVEL:.0%} percentile bootstrap over tasks; regret: best accuracy minus that of the top-scored model.\n"]
    parts.append("## Headline\n")
    parts.append(_markdown(headline_table(evaluation, [p for p in protocols if p in set(evaluation["protocol"])],
                                          seed=seed, ceilings=ceilings)))
    parts.append(_ceiling_text(ceilings))
    for protocol in protocols:
        if protocol not in set(evaluation["protocol"]):
            continue
        table = metric_table(evaluation, protocol, seed=seed)
        pairs = paired_differences(evaluation, protocol, seed=seed)
        parts.append(f"## Against the {protocol} ground truth\n")
        parts.append(_markdown(with_ceiling(table, ceilings[protocol], seed=seed)))
        parts.append(_significance_text(table, pairs))
        per_task = tau_matrix(evaluation, protocol).reindex(table["metric"])
        if not ceilings[protocol].empty:
            per_task = pd.concat([ceilings[protocol].set_index("dataset")[["ceiling"]].T, per_task])
        parts.append(f"Weighted tau per task ({protocol}):\n")
        parts.append(_markdown(per_task.reset_index()))
    agreement = protocol_agreement(ground_truth)
    if not agreement.empty:
        parts.append("## Linear probe vs. full fine-tune\n")
        parts.append("Rank correlation of the models' accuracies under the two protocols, per task:\n")
        parts.append(_markdown(agreement))
    accuracy = ground_truth.groupby(["dataset", "protocol"])["accuracy"].agg(["min", "median", "max"]).reset_index()
    parts.append("## Ground-truth accuracy spread (test split)\n")
    parts.append(_markdown(accuracy))
    parts.append("## Models\n")
    parts.append(_markdown(models.drop(columns=["build_seconds"], errors="ignore")))
    parts.append("## Time\n")
    parts.append(f"Wall seconds of this run's steps (a step served from the cache takes ~0 s) on a {os.cpu_count()}-core "
                 f"CPU, 1-minute load average {os.getloadavg()[0]:.1f} when the tables were written:\n")
    parts.append(_markdown(pd.DataFrame([{"step": k, "seconds": round(v)} for k, v in timings.items()])))
    return "\n".join(parts)
