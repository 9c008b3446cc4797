"""Choose the answer's consensus (members and rule) over both project benchmarks, held out.

Inputs: the offline and the zoo benchmark's per-model scores (``dataset, model, metric, score``) and
ground truth (``dataset, model, protocol, accuracy``). A task is one (benchmark, dataset, protocol).

* **Candidates**: every metric (registry metrics, training-based proxies, seed methods, priors)
  that scored every model with ground truth on every task of both benchmarks.
* **Configurations**: each single metric; member sets of 2-3 metrics combined by ``rank`` or
  ``zscore`` mean; and a learned combination (non-negative weights over standardised scores, fitted
  by a pairwise logistic loss on the training tasks). Member sets are drawn from the ``--shortlist``
  best single metrics of the training tasks (chosen inside each fold, so the shortlist is held out too).
* **Cost**: the whole answer may cost at most twice the previous one (LogME + ETran with its bootstrap):
  each metric's cost as the only member, relative to that, comes from ``benchmarks/recommend_speed.py
  --member-costs`` (``results/answer_costs.csv``); member sets whose summed cost exceeds 2 are no candidates.
  The best single metric reported beside the answer is chosen from every metric, whatever its cost.
* **Criterion**: the *worst benchmark's* mean weighted tau over the training tasks (ties: lower mean
  top-1 regret), so a configuration must do well on both benchmarks, not on their pooled mean.
* **Held out**: leave-one-dataset-out (select on every other dataset of both benchmarks, evaluate on
  the held-out dataset's tasks) and leave-one-benchmark-out (select on one benchmark, evaluate on the
  other). The default in code (``hf_tsel.metrics.consensus``) is the configuration selected on all tasks.

Usage: ``python benchmarks/consensus_selection.py`` writes ``benchmarks/results/consensus_selection.{md,csv}``.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

from hf_tsel.evaluation import top1_regret, weighted_kendall_tau
from hf_tsel.metrics.consensus import RULES, standardise

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("offline", "zoo")
LEARNED = "learned"
COST_BUDGET = 2.0  # the whole answer may cost at most 2x the previous one (LogME + ETran, bootstrap)
WEIGHT_FLOOR = 1e-6  # learned weights below this count as 0 (the member is not computed)
_EXCLUDED = ("consensus",)  # the answer itself is what is being chosen


@dataclass(frozen=True)
class Config:
    members: tuple[str, ...]
    rule: str  # "zscore", "rank" or LEARNED

    @property
    def label(self) -> str:
        if self.rule == LEARNED:
            return f"learned weights over {len(self.members)} metrics"
        return self.members[0] if len(self.members) == 1 else f"{'+'.join(self.members)} ({self.rule})"


class Tasks:
    """Per task: the models with ground truth, their accuracies and every candidate's standardised scores."""

    def __init__(self, frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]]):
        self.names: list[tuple[str, str, str]] = []
        self.accuracy: dict[tuple, np.ndarray] = {}
        self.raw: dict[tuple, pd.DataFrame] = {}
        for benchmark, (scores, ground_truth) in frames.items():
            scores = scores[~scores["metric"].isin(_EXCLUDED)]
            by_metric = scores.pivot_table(index=["dataset", "model"], columns="metric", values="score", aggfunc="first")
            for (dataset, protocol), gt in ground_truth.groupby(["dataset", "protocol"], sort=True):
                accuracy = gt.set_index("model")["accuracy"].dropna()
                if len(accuracy) < 3 or np.ptp(accuracy.to_numpy()) == 0:
                    continue
                task = (benchmark, dataset, protocol)
                self.names.append(task)
                self.accuracy[task] = accuracy.to_numpy(float)
                self.raw[task] = by_metric.loc[dataset].reindex(accuracy.index)
        self.pool = sorted(m for m in set.intersection(*(set(t.columns) for t in self.raw.values()))
                           if all(t[m].notna().all() for t in self.raw.values()))
        self.standardised = {task: {(m, rule): standardise(self.raw[task][m].to_numpy(float), rule)
                                    for m in self.pool for rule in RULES} for task in self.names}

    def values(self, task: tuple, config: Config, weights: np.ndarray | None = None) -> np.ndarray:
        if config.rule == LEARNED:
            return np.stack([self.standardised[task][(m, "zscore")] for m in config.members], axis=1) @ weights
        return np.mean([self.standardised[task][(m, config.rule)] for m in config.members], axis=0)

    def evaluate(self, task: tuple, values: np.ndarray) -> tuple[float, float]:
        """(weighted tau, top-1 regret) of consensus values on one task."""
        accuracy = self.accuracy[task]
        tau = weighted_kendall_tau(values, accuracy) if np.ptp(values) > 0 else 0.0
        return tau, top1_regret(values, accuracy)


def criterion(results: dict[tuple, tuple[float, float]], train: list[tuple]) -> tuple[float, float]:
    """(worst benchmark's mean tau, mean regret) over ``train`` tasks: larger first, then smaller."""
    means = [np.mean([results[t][0] for t in train if t[0] == b]) for b in BENCHMARKS if any(t[0] == b for t in train)]
    return min(means), float(np.mean([results[t][1] for t in train]))


def fit_weights(tasks: Tasks, members: tuple[str, ...], train: list[tuple], l2: float = 0.1) -> np.ndarray:
    """Non-negative weights of z-scored members minimising a pairwise logistic loss (each task weighs the same).

    For every pair of models with different accuracy, the better one should get the larger combined score.
    """
    pairs = []
    for task in train:
        z = np.stack([tasks.standardised[task][(m, "zscore")] for m in members], axis=1)
        accuracy = tasks.accuracy[task]
        better, worse = np.nonzero(accuracy[:, None] > accuracy[None, :])
        if len(better):
            pairs.append((z[better] - z[worse], 1.0 / len(better)))

    def loss(w):
        total, grad = l2 * w @ w, 2 * l2 * w
        for diff, weight in pairs:
            margin = diff @ w
            total += weight * np.logaddexp(0.0, -margin).sum()
            grad -= weight * (diff * (1.0 / (1.0 + np.exp(margin)))[:, None]).sum(axis=0)
        return total, grad

    start = np.full(len(members), 1.0 / len(members))
    fitted = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * len(members))
    return fitted.x


def load_costs(path: Path) -> dict[str, float]:
    """Each metric's cost as the only consensus member, relative to the previous answer (priors cost nothing)."""
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python benchmarks/recommend_speed.py --member-costs METRICS` first")
    return dict(zip(*pd.read_csv(path)[["metric", "ratio"]].T.to_numpy()))


def affordable(members, costs: dict[str, float], weights: np.ndarray | None = None, budget: float = COST_BUDGET) -> bool:
    """Whether the members' summed relative cost (members with a positive weight) stays within ``budget``."""
    used = [m for i, m in enumerate(members) if weights is None or weights[i] > WEIGHT_FLOOR]
    return sum(0.0 if m.startswith("prior:") else costs.get(m, math.inf) for m in used) <= budget


def select(tasks: Tasks, train: list[tuple], shortlist: int, max_members: int,
           costs: dict[str, float]) -> tuple[Config, np.ndarray | None, list]:
    """The best affordable configuration on ``train`` by :func:`criterion`, its learned weights, and the shortlist."""
    def results_of(config, weights=None):
        return {t: tasks.evaluate(t, tasks.values(t, config, weights)) for t in train}

    def key(item):
        worst, regret = criterion(item[2], train)
        return (-worst, regret, len(item[0].members), item[0].label)

    pool = [m for m in tasks.pool if affordable((m,), costs)]
    singles = [(Config((m,), "zscore"), None, results_of(Config((m,), "zscore"))) for m in pool]
    short = [c.members[0] for c, _, _ in sorted(singles, key=key)[:shortlist]]
    candidates = list(singles)
    for size in range(2, max_members + 1):
        for members in itertools.combinations(short, size):
            if affordable(members, costs):
                candidates += [(Config(members, rule), None, results_of(Config(members, rule))) for rule in RULES]
    learned = Config(tuple(short), LEARNED)
    weights = fit_weights(tasks, learned.members, train)
    if affordable(learned.members, costs, weights):
        candidates.append((learned, weights, results_of(learned, weights)))
    config, weights, _ = min(candidates, key=key)
    return config, weights, short


def held_out(tasks: Tasks, shortlist: int, max_members: int, costs: dict[str, float]) -> pd.DataFrame:
    """One row per (fold kind, held-out task): the configuration chosen without it and its tau/regret."""
    rows = []
    folds = [("leave-one-dataset-out", [t for t in tasks.names if t[:2] != held[:2]], [held])
             for held in tasks.names]
    folds += [("leave-one-benchmark-out", [t for t in tasks.names if t[0] != b], [t for t in tasks.names if t[0] == b])
              for b in BENCHMARKS]
    chosen_for = {}
    for kind, train, test in folds:
        key = (kind, tuple(train))
        if key not in chosen_for:
            chosen = select(tasks, train, shortlist, max_members, costs)
            best_single = max(tasks.pool, key=lambda m: criterion(
                {t: tasks.evaluate(t, tasks.values(t, Config((m,), "zscore"))) for t in train}, train)[0])
            chosen_for[key] = (chosen, best_single)
        (config, weights, _), single = chosen_for[key]
        for task in test:
            tau, regret = tasks.evaluate(task, tasks.values(task, config, weights))
            single_tau, single_regret = tasks.evaluate(task, tasks.values(task, Config((single,), "zscore")))
            rows.append({"fold": kind, "benchmark": task[0], "dataset": task[1], "protocol": task[2],
                         "chosen": config.label, "tau": tau, "regret": regret, "single": single,
                         "single_tau": single_tau, "single_regret": single_regret})
    return pd.DataFrame(rows)


def fixed_rows(tasks: Tasks, final: Config, weights: np.ndarray | None) -> pd.DataFrame:
    """Every single metric, random and the final choice (in-sample) on every task."""
    rows = []
    for label, config, w in [(f"chosen: {final.label} (in-sample)", final, weights)] + [
            (m, Config((m,), "zscore"), None) for m in tasks.pool]:
        for task in tasks.names:
            tau, regret = tasks.evaluate(task, tasks.values(task, config, w))
            rows.append({"method": label, "benchmark": task[0], "dataset": task[1], "protocol": task[2],
                         "tau": tau, "regret": regret})
    for task in tasks.names:
        accuracy = tasks.accuracy[task]
        rows.append({"method": "random", "benchmark": task[0], "dataset": task[1], "protocol": task[2], "tau": 0.0,
                     "regret": float(accuracy.max() - accuracy.mean())})
    return pd.DataFrame(rows)


def _table(frame: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) and not math.isnan(v) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)])


def summary_by(frame: pd.DataFrame, method_column: str, tau: str = "tau", regret: str = "regret") -> pd.DataFrame:
    """Mean and worst tau and mean regret per method, benchmark and protocol, plus each benchmark overall."""
    per_protocol = frame.groupby([method_column, "benchmark", "protocol"]).agg(
        mean_tau=(tau, "mean"), worst_tau=(tau, "min"), mean_regret=(regret, "mean")).reset_index()
    overall = frame.groupby([method_column, "benchmark"]).agg(
        mean_tau=(tau, "mean"), worst_tau=(tau, "min"), mean_regret=(regret, "mean")).reset_index()
    return pd.concat([per_protocol, overall.assign(protocol="all")], ignore_index=True)


def readme_table(folds: pd.DataFrame, fixed: pd.DataFrame, singles: int = 6) -> pd.DataFrame:
    """Mean tau per (benchmark, protocol), worst task and mean regret of the held-out answer, the held-out best
    single metric, the ``singles`` best single metrics (in-sample) and random: the README's table."""
    lodo = folds[folds["fold"] == "leave-one-dataset-out"]
    rows = [lodo.assign(method="answer (held out: leave-one-dataset-out)"),
            lodo.assign(method="best single metric (held out the same way)", tau=lodo["single_tau"],
                        regret=lodo["single_regret"])]
    in_sample = fixed[~fixed["method"].str.startswith("chosen")]
    ranked = in_sample.groupby(["method", "benchmark"])["tau"].mean().unstack().min(axis=1).sort_values(ascending=False)
    rows += [in_sample[in_sample["method"] == m] for m in [*ranked.index[:singles], "random"] if m in set(in_sample["method"])]
    frame = pd.concat(rows)
    means = frame.pivot_table(index="method", columns=["benchmark", "protocol"], values="tau", aggfunc="mean",
                              sort=False)
    means.columns = [f"{b} {p}" for b, p in means.columns]
    return means.assign(worst_task=frame.groupby("method", sort=False)["tau"].min(),
                        mean_regret=frame.groupby("method", sort=False)["regret"].mean()).reset_index()


def report(tasks: Tasks, folds: pd.DataFrame, fixed: pd.DataFrame, final: Config, weights, shortlist: list,
           costs: dict[str, float]) -> str:
    answer = pd.concat([folds.assign(method="answer: " + folds["fold"]),
                        folds.assign(method="best single metric: " + folds["fold"], tau=folds["single_tau"],
                                     regret=folds["single_regret"])])
    held = summary_by(answer, "method").sort_values(["benchmark", "protocol", "method"])
    singles = summary_by(fixed, "method")
    overall = singles[singles["protocol"] == "all"].pivot_table(index="method", columns="benchmark",
                                                                values=["mean_tau", "worst_tau", "mean_regret"])
    overall.columns = [f"{b} {q}" for q, b in overall.columns]
    overall = overall.assign(worst_benchmark_mean=overall[[f"{b} mean_tau" for b in BENCHMARKS]].min(axis=1))
    overall = overall.sort_values("worst_benchmark_mean", ascending=False).reset_index()
    weights_text = "" if weights is None else "Weights: " + ", ".join(
        f"{m} {w:.3f}" for m, w in zip(final.members, weights)) + ".\n"
    return "\n\n".join([
        "# Consensus selection over both benchmarks (generated by benchmarks/consensus_selection.py)",
        f"Tasks (benchmark, dataset, protocol): {len(tasks.names)} "
        f"({', '.join(f'{b}: {sum(t[0] == b for t in tasks.names)}' for b in BENCHMARKS)}). "
        f"Candidate pool (metrics with a score for every model of every task): {len(tasks.pool)}: "
        f"{', '.join(tasks.pool)}. Criterion: the worst benchmark's mean weighted tau over the training tasks, "
        "ties broken by mean top-1 regret.",
        f"**Chosen on all tasks:** {final.label}; shortlist {', '.join(shortlist)}.\n{weights_text}",
        f"Cost constraint: member sets whose summed cost (each metric alone as the member, relative to the previous "
        f"answer, `answer_costs.csv`) exceeds {COST_BUDGET:g} are not candidates for the answer: "
        + ", ".join(f"{m} {costs.get(m, math.inf):.2f}" for m in tasks.pool if not m.startswith("prior:")) + ".",
        "## Summary (the README's table): mean weighted tau per benchmark and protocol",
        "The answer and the best single metric are held out (chosen without the task's dataset); the single "
        "metrics below them are the best by the worst benchmark's mean, in-sample.",
        _table(readme_table(folds, fixed)),
        "## Held-out result, per benchmark and protocol",
        "`answer` is the configuration chosen without the held-out task's dataset (leave-one-dataset-out) or "
        "without its whole benchmark (leave-one-benchmark-out); `best single metric` is the single metric chosen "
        "the same way.",
        _table(held),
        "## Held-out choices per task", _table(folds),
        "## Every candidate over all tasks (in-sample), sorted by the worst benchmark's mean tau",
        _table(overall),
    ]) + "\n"


def load(results: Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {b: (pd.read_csv(results / f"{b}_scores.csv"), pd.read_csv(results / f"{b}_ground_truth.csv"))
            for b in BENCHMARKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder with <benchmark>_scores.csv and "
                                                                     "<benchmark>_ground_truth.csv")
    parser.add_argument("--shortlist", type=int, default=8, help="best single metrics combined into member sets")
    parser.add_argument("--max-members", type=int, default=3)
    parser.add_argument("--costs", type=Path, default=RESULTS / "answer_costs.csv",
                        help="each metric's cost as the only member, from benchmarks/recommend_speed.py --member-costs")
    args = parser.parse_args()
    tasks = Tasks(load(args.results))
    costs = load_costs(args.costs)
    folds = held_out(tasks, args.shortlist, args.max_members, costs)
    final, weights, shortlist = select(tasks, tasks.names, args.shortlist, args.max_members, costs)
    fixed = fixed_rows(tasks, final, weights)
    text = report(tasks, folds, fixed, final, weights, shortlist, costs)
    (RESULTS / "consensus_selection.md").write_text(text, encoding="utf-8")
    pd.concat([folds.assign(kind="held-out"), fixed.assign(kind="in-sample")]).to_csv(
        RESULTS / "consensus_selection.csv", index=False, float_format="%.4f")
    print(text)


if __name__ == "__main__":
    main()
