"""Statistics and the Markdown summary of the zoo benchmark.

Tasks are the unit of replication: confidence intervals resample target tasks with replacement
(percentile bootstrap, Efron & Tibshirani 1993, ch. 13), and two metrics are compared by a paired
bootstrap of their per-task weighted-tau differences. A difference is called significant when its
95% interval excludes zero.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...evaluation import kendall_tau, spearman_rho, weighted_kendall_tau
from ..benchmark import _markdown

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95


def _bootstrap_means(values: np.ndarray, rng: np.random.Generator, samples: int) -> np.ndarray:
    picks = rng.integers(0, len(values), size=(samples, len(values)))
    return values[picks].mean(axis=1)


def _interval(means: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


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
                   seed: int = 0) -> pd.DataFrame:
    """One row per metric: mean weighted tau [95% CI] and mean top-1 regret under each protocol."""
    columns = {}
    for protocol in protocols:
        table = metric_table(evaluation, protocol, seed=seed).set_index("metric")
        columns[f"τw {protocol} [95% CI]"] = table.apply(
            lambda r: "-" if math.isnan(r["mean_tau"]) else f"{r['mean_tau']:.3f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            axis=1)
        columns[f"regret {protocol}"] = table["mean_top1_regret"]
    frame = pd.DataFrame(columns)
    order = metric_table(evaluation, protocols[0], seed=seed, samples=1)["metric"]
    return frame.reindex(order).rename_axis("metric").reset_index()


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
    parts = [f"# Zoo benchmark: {len(models)} models x {len(tasks)} target tasks\n",
             "Produced by `hf-tsel benchmark zoo` (see docs/groundtruth.md). Weighted tau: weighted Kendall tau "
             "between metric scores and ground-truth accuracies over all models of a task; CI: "
             f"{LEVEL:.0%} percentile bootstrap over tasks; regret: best accuracy minus that of the top-scored model.\n"]
    parts.append("## Headline\n")
    parts.append(_markdown(headline_table(evaluation, [p for p in protocols if p in set(evaluation["protocol"])],
                                          seed=seed)))
    for protocol in protocols:
        if protocol not in set(evaluation["protocol"]):
            continue
        table = metric_table(evaluation, protocol, seed=seed)
        pairs = paired_differences(evaluation, protocol, seed=seed)
        parts.append(f"## Against the {protocol} ground truth\n")
        parts.append(_markdown(table))
        parts.append(_significance_text(table, pairs))
        per_task = tau_matrix(evaluation, protocol).reindex(table["metric"])
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
