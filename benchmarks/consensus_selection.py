"""Choose the consensus members and combination rule by leave-one-dataset-out (LODO) selection.

Input: a benchmark's per-model scores (``dataset, model, metric, score``) and ground truth
(``dataset, model, protocol, accuracy``) CSVs, e.g. the offline benchmark's or the zoo benchmark's.
A task is one (dataset, protocol) pair. Stage 1 takes the candidate pool from the published
per-dataset weighted-tau tables (metrics whose mean published tau reaches 0.5 in at least one
published zoo) plus the priors. Stage 2: for every held-out dataset, each candidate (member set of
1-3 metrics from the pool, rule in ``zscore``/``rank``) is scored by its mean weighted Kendall tau
on the tasks of the *other* datasets; the best one is then evaluated on the held-out tasks. The
final configuration is the one selected on all datasets. Priors (``prior:*``) are added from the
zoo metadata and are candidates like any metric.

Usage (the offline benchmark, then the zoo benchmark)::

    python benchmarks/consensus_selection.py
    python benchmarks/consensus_selection.py --scores benchmarks/results/zoo_scores.csv \
        --ground-truth benchmarks/results/zoo_ground_truth.csv --zoo <zoo> --name zoo

Writes ``benchmarks/results/<name>_consensus_selection.{md,csv}``.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from hf_tsel.evaluation import top1_regret, weighted_kendall_tau
from hf_tsel.metrics.consensus import RULES, standardise
from hf_tsel.zoo import load_zoo

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_RESULTS = Path(__file__).resolve().parents[1] / "hf_tsel" / "resources" / "paper_results"
PRIORS = ("prior:params", "prior:imagenet_top1", "prior:feature_dim")
# Registry names of the methods in the published weighted-tau tables (PED there is PED + SFDA).
# LEAD and ITM are left out: their implementations are being reworked.
PAPER_NAMES = {"logme": "logme", "nleep": "nleep", "pactran": "pactran", "sfda": "sfda", "gbc": "gbc",
               "etran": "etran", "ped": "ped+sfda", "parc": "parc"}
PAPER_THRESHOLD = 0.5


def paper_pool(paper_dir: Path = PAPER_RESULTS, threshold: float = PAPER_THRESHOLD) -> tuple[list[str], pd.DataFrame]:
    """Stage 1: metrics whose mean published weighted tau reaches ``threshold`` in at least one published zoo.

    Returns the pool and the per-zoo means (LEAD supervised / self-supervised zoos, ITM's mixed zoo).
    """
    lead = pd.read_csv(paper_dir / "lead_weighted_tau.csv")
    lead = lead.assign(source="LEAD " + lead["zoo"]).drop(columns=["zoo", "venue"])
    itm = pd.read_csv(paper_dir / "itm_table1_weighted_tau_and_cpu_seconds.csv")
    itm = itm[itm["quantity"] == "weighted_tau"].drop(columns=["quantity", "average"]).assign(source="ITM mixed")
    rows = []
    for table in (lead, itm):
        for row in table.itertuples(index=False):
            name = PAPER_NAMES.get(row.method.lower())
            values = [v for k, v in row._asdict().items() if k not in ("method", "source")]
            if name:
                rows.append({"metric": name, "source": row.source, "mean_tau": float(np.mean(values))})
    means = pd.DataFrame(rows).pivot_table(index="metric", columns="source", values="mean_tau")
    return sorted(means.index[means.max(axis=1) >= threshold]), means


def prior_rows(scores: pd.DataFrame, zoos: list[str]) -> pd.DataFrame:
    """``prior:*`` score rows for every (dataset, model) of ``scores`` from the zoo metadata (missing facts skipped)."""
    metadata = {e.name: e.metadata for zoo in zoos for e in load_zoo(zoo)}
    rows = []
    for (dataset, model) in scores[["dataset", "model"]].drop_duplicates().itertuples(index=False):
        facts = metadata.get(model, {})
        for prior in PRIORS:
            value = facts.get(prior.split(":", 1)[1])
            if value is not None:
                rows.append({"dataset": dataset, "model": model, "metric": prior, "score": float(value)})
    return pd.DataFrame(rows, columns=["dataset", "model", "metric", "score"])


class Tasks:
    """Standardised member scores and accuracies per task, for fast evaluation of many configurations."""

    def __init__(self, scores: pd.DataFrame, ground_truth: pd.DataFrame, pool: list[str]):
        self.names, self.accuracy, self.models, self.standardised = [], {}, {}, {}
        by_metric = scores.pivot_table(index=["dataset", "model"], columns="metric", values="score", aggfunc="first")
        for (dataset, protocol), gt in ground_truth.groupby(["dataset", "protocol"], sort=True):
            accuracy = gt.set_index("model")["accuracy"].dropna()
            table = by_metric.loc[dataset].reindex(accuracy.index)
            usable = [m for m in pool if m in table and table[m].notna().all()]
            if len(accuracy) < 3 or np.ptp(accuracy.to_numpy()) == 0:
                continue
            task = (dataset, protocol)
            self.names.append(task)
            self.accuracy[task] = accuracy.to_numpy(float)
            self.models[task] = list(accuracy.index)
            self.standardised[task] = {(m, rule): standardise(table[m].to_numpy(float), rule)
                                       for m in usable for rule in RULES}
        self.pool = [m for m in pool if all((m, RULES[0]) in self.standardised[t] for t in self.names)]

    def consensus(self, task: tuple, members: tuple, rule: str) -> np.ndarray:
        return np.mean([self.standardised[task][(m, rule)] for m in members], axis=0)

    def evaluate(self, task: tuple, members: tuple, rule: str) -> tuple[float, float]:
        """(weighted tau, top-1 regret) of a configuration on one task."""
        values = self.consensus(task, members, rule)
        accuracy = self.accuracy[task]
        tau = weighted_kendall_tau(values, accuracy) if np.ptp(values) > 0 else 0.0
        return tau, top1_regret(values, accuracy)


def configurations(pool: list[str], max_members: int) -> list[tuple[tuple[str, ...], str]]:
    """Every (member set, rule); single metrics once (both rules rank a single metric identically)."""
    configs = [((m,), RULES[0]) for m in pool]
    for size in range(2, max_members + 1):
        configs += [(members, rule) for members in itertools.combinations(pool, size) for rule in RULES]
    return configs


def select(tasks: Tasks, configs: list, train: list[tuple]) -> tuple[tuple[str, ...], str]:
    """The configuration with the best mean weighted tau on ``train`` (ties: better worst task, fewer members)."""
    def key(config):
        taus = [tasks.evaluate(t, *config)[0] for t in train]
        return (-np.mean(taus), -np.min(taus), len(config[0]), config)

    return min(configs, key=key)


def random_regret(accuracy: np.ndarray) -> float:
    """Expected top-1 regret of a uniformly random pick."""
    return float(accuracy.max() - accuracy.mean())


def run(scores_path: Path, gt_path: Path, zoos: list[str], max_members: int) -> dict:
    scores = pd.read_csv(scores_path)
    ground_truth = pd.read_csv(gt_path)
    if not any(m.startswith("prior:") for m in scores["metric"].unique()):
        scores = pd.concat([scores, prior_rows(scores, zoos)], ignore_index=True)
    published, paper_means = paper_pool()
    pool = [m for m in published + list(PRIORS) if m in set(scores["metric"])]
    tasks = Tasks(scores, ground_truth, pool)
    configs = configurations(tasks.pool, max_members)
    singles = [c for c in configs if len(c[0]) == 1]
    datasets = sorted({d for d, _ in tasks.names})
    folds = []
    for held_out in datasets:
        train = [t for t in tasks.names if t[0] != held_out]
        test = [t for t in tasks.names if t[0] == held_out]
        chosen = select(tasks, configs, train)
        single = select(tasks, singles, train)
        for task in test:
            folds.append({"dataset": task[0], "protocol": task[1], "members": "+".join(chosen[0]), "rule": chosen[1],
                          "tau": tasks.evaluate(task, *chosen)[0], "regret": tasks.evaluate(task, *chosen)[1],
                          "single": single[0][0], "single_tau": tasks.evaluate(task, *single)[0],
                          "single_regret": tasks.evaluate(task, *single)[1]})
    final = select(tasks, configs, tasks.names)
    fixed = [(f"consensus ({'+'.join(final[0])}, {final[1]}; in-sample)", final)] + [(c[0][0], c) for c in singles]
    rows = []
    for label, config in fixed:
        for task in tasks.names:
            tau, regret = tasks.evaluate(task, *config)
            rows.append({"method": label, "dataset": task[0], "protocol": task[1], "tau": tau, "regret": regret})
    for task in tasks.names:
        rows.append({"method": "random", "dataset": task[0], "protocol": task[1], "tau": 0.0,
                     "regret": random_regret(tasks.accuracy[task])})
    return {"folds": pd.DataFrame(folds), "fixed": pd.DataFrame(rows), "final": final, "pool": tasks.pool,
            "num_configs": len(configs), "tasks": tasks.names, "paper_means": paper_means}


def _table(frame: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) and not math.isnan(v) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def report(result: dict, name: str) -> str:
    folds, fixed = result["folds"], result["fixed"]
    summary = fixed.groupby("method").agg(mean_tau=("tau", "mean"), worst_tau=("tau", "min"),
                                          mean_regret=("regret", "mean")).sort_values("mean_tau", ascending=False)
    held_out = pd.DataFrame([{"method": "consensus (LODO-selected)", "mean_tau": folds["tau"].mean(),
                              "worst_tau": folds["tau"].min(), "mean_regret": folds["regret"].mean()},
                             {"method": "best single metric (LODO-selected)", "mean_tau": folds["single_tau"].mean(),
                              "worst_tau": folds["single_tau"].min(), "mean_regret": folds["single_regret"].mean()}])
    members, rule = result["final"]
    return "\n".join([
        f"# Consensus selection on the {name} benchmark\n",
        f"Generated by `benchmarks/consensus_selection.py`. Tasks (dataset, protocol): {len(result['tasks'])}; "
        f"candidate pool (stage 1, with full coverage here): {', '.join(result['pool'])}; "
        f"{result['num_configs']} configurations "
        "(1-3 members x rules zscore/rank).\n",
        "## Stage 1: candidates from the published tables\n",
        f"A metric is a candidate when its mean published weighted tau reaches {PAPER_THRESHOLD} in at least one "
        "published zoo (priors with full coverage are always candidates):\n",
        _table(result["paper_means"].round(3).reset_index()),
        "## Stage 2: leave-one-dataset-out selection on this benchmark\n",
        f"**Selected on all datasets:** members {', '.join(members)}, rule `{rule}`.\n",
        "## Held-out (leave-one-dataset-out) result\n",
        "Each row: the configuration selected on the other datasets, evaluated on this dataset's tasks.\n",
        _table(folds.round(4)),
        _table(held_out),
        "## Every single metric, prior and random, and the final consensus (in-sample), over all tasks\n",
        _table(summary.reset_index()),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scores", type=Path, default=RESULTS / "offline_scores.csv")
    parser.add_argument("--ground-truth", type=Path, default=RESULTS / "offline_ground_truth.csv")
    parser.add_argument("--zoo", action="append", help="zoo(s) whose metadata gives the priors "
                                                       "(default: offline, offline-benchmark)")
    parser.add_argument("--name", default="offline", help="output prefix (default offline)")
    parser.add_argument("--max-members", type=int, default=3)
    args = parser.parse_args()
    result = run(args.scores, args.ground_truth, args.zoo or ["offline", "offline-benchmark"], args.max_members)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}_consensus_selection.md").write_text(report(result, args.name), encoding="utf-8")
    result["fixed"].to_csv(RESULTS / f"{args.name}_consensus_selection.csv", index=False, float_format="%.4f")
    print(report(result, args.name))


if __name__ == "__main__":
    main()
