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

from hf_tsel.defaults import GOALS
from hf_tsel.evaluation import top1_regret, weighted_kendall_tau
from hf_tsel.groundtruth.table import GOAL_OF_PROTOCOL, read_ground_truth
from hf_tsel.metrics.consensus import ANSWERS, RULES, standardise

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


# The answer before answers were chosen per goal (one configuration over every protocol), kept for comparison.
PREVIOUS_ANSWER = Config(("ped+logme", "linear_probe_cv", "etran_lda"), "rank")


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

    def results(self, config: Config, tasks: list[tuple], weights: np.ndarray | None = None) -> dict:
        """(weighted tau, top-1 regret) of ``config`` on each of ``tasks``."""
        return {t: self.evaluate(t, self.values(t, config, weights)) for t in tasks}

    def evaluate(self, task: tuple, values: np.ndarray) -> tuple[float, float]:
        """(weighted tau, top-1 regret) of consensus values on one task."""
        accuracy = self.accuracy[task]
        tau = weighted_kendall_tau(values, accuracy) if np.ptp(values) > 0 else 0.0
        return tau, top1_regret(values, accuracy)


def criterion(results: dict[tuple, tuple[float, float]], train: list[tuple]) -> tuple[float, float]:
    """(worst benchmark's mean tau, mean regret) over ``train`` tasks: larger first, then smaller."""
    means = [np.mean([results[t][0] for t in train if t[0] == b]) for b in BENCHMARKS if any(t[0] == b for t in train)]
    return min(means), float(np.mean([results[t][1] for t in train]))


def better_first(results: dict[tuple, tuple[float, float]], train: list[tuple]) -> tuple[float, float]:
    """Sort key of :func:`criterion`: the configuration with the larger worst-benchmark tau, then the smaller
    regret, comes first."""
    worst, regret = criterion(results, train)
    return -worst, regret


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


def select(tasks: Tasks, train: list[tuple], shortlist: int, max_members: int, costs: dict[str, float], *,
           one_se: bool = True) -> tuple[Config, np.ndarray | None, list]:
    """The best affordable configuration on ``train`` by :func:`criterion`, its learned weights, and the shortlist.

    ``one_se``: the one-standard-error rule (Breiman et al. 1984): of the configurations whose criterion is
    within one standard error of the best one's (the standard error of its worst benchmark's mean tau over the
    training tasks), the one with the fewest members; a combination must beat a simpler answer by more than
    the selection noise of a few tasks.
    """
    def results_of(config, weights=None):
        return tasks.results(config, train, weights)

    def key(item):
        return (*better_first(item[2], train), len(item[0].members), item[0].label)

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
    best = min(candidates, key=key)
    if one_se:
        bar = criterion(best[2], train)[0] - standard_error(best[2], train)
        simplest = min(len(c.members) for c, _, r in candidates if criterion(r, train)[0] >= bar)
        best = min((item for item in candidates if len(item[0].members) == simplest
                    and criterion(item[2], train)[0] >= bar), key=key)
    config, weights, _ = best
    return config, weights, short


def standard_error(results: dict[tuple, tuple[float, float]], train: list[tuple]) -> float:
    """Standard error of the mean tau over the training tasks of the benchmark with the lowest mean."""
    taus = {b: [results[t][0] for t in train if t[0] == b] for b in BENCHMARKS}
    worst = min((b for b in taus if taus[b]), key=lambda b: np.mean(taus[b]))
    return float(np.std(taus[worst], ddof=1) / np.sqrt(len(taus[worst]))) if len(taus[worst]) > 1 else 0.0


def best_single(tasks: Tasks, train: list[tuple]) -> str:
    """The single metric with the best :func:`criterion` on ``train`` (any cost)."""
    return min(tasks.pool, key=lambda m: better_first(tasks.results(Config((m,), "zscore"), train), train))


def held_out(tasks: Tasks, names: list[tuple], shortlist: int, max_members: int, costs: dict[str, float], *,
             one_se: bool = True) -> pd.DataFrame:
    """One row per (fold kind, held-out task of ``names``): the configuration chosen without it and its tau/regret."""
    rows = []
    folds = [("leave-one-dataset-out", [t for t in names if t[:2] != held[:2]], [held]) for held in names]
    folds += [("leave-one-benchmark-out", [t for t in names if t[0] != b], [t for t in names if t[0] == b])
              for b in BENCHMARKS]
    chosen_for = {}
    for kind, train, test in folds:
        key = (kind, tuple(train))
        if key not in chosen_for:
            chosen_for[key] = (select(tasks, train, shortlist, max_members, costs, one_se=one_se),
                               best_single(tasks, train))
        (config, weights, _), single = chosen_for[key]
        for task in test:
            tau, regret = tasks.evaluate(task, tasks.values(task, config, weights))
            single_tau, single_regret = tasks.evaluate(task, tasks.values(task, Config((single,), "zscore")))
            rows.append({"fold": kind, "benchmark": task[0], "dataset": task[1], "protocol": task[2],
                         "chosen": config.label, "tau": tau, "regret": regret, "single": single,
                         "single_tau": single_tau, "single_regret": single_regret})
    return pd.DataFrame(rows)


def fixed_rows(tasks: Tasks, finals: dict[str, tuple[Config, np.ndarray | None]], previous: Config) -> pd.DataFrame:
    """Every single metric, random, the previous answer and each goal's final choice (in-sample, on its tasks)."""
    rows = []
    configs = [(f"chosen for {goal}: {config.label} (in-sample)", config, w, goal) for goal, (config, w) in finals.items()]
    configs += [(f"previous answer: {previous.label}", previous, None, None)]
    configs += [(m, Config((m,), "zscore"), None, None) for m in tasks.pool]
    for label, config, w, goal in configs:
        for task in tasks.names:
            if goal is None or GOAL_OF_PROTOCOL[task[2]] == goal:
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


def _held_out_methods(goal_folds: pd.DataFrame, one_folds: pd.DataFrame, fold: str) -> list[pd.DataFrame]:
    """The held-out answer and best single metric, per goal and with one answer for every protocol."""
    goal, one = goal_folds[goal_folds["fold"] == fold], one_folds[one_folds["fold"] == fold]
    return [goal.assign(method="answer for the task's goal"),
            goal.assign(method="best single metric for the goal", tau=goal["single_tau"], regret=goal["single_regret"]),
            one.assign(method="one answer for every protocol (previous procedure)"),
            one.assign(method="best single metric for every protocol", tau=one["single_tau"],
                       regret=one["single_regret"])]


def readme_table(goal_folds: pd.DataFrame, one_folds: pd.DataFrame, fixed: pd.DataFrame,
                 singles: int = 6) -> pd.DataFrame:
    """Mean tau per (benchmark, protocol), worst task and mean regret per benchmark of the held-out (leave-one-
    dataset-out) answers and best single metrics, the ``singles`` best single metrics (in-sample) and random."""
    rows = _held_out_methods(goal_folds, one_folds, "leave-one-dataset-out")
    in_sample = fixed[~fixed["method"].str.startswith(("chosen", "previous"))]
    ranked = in_sample.groupby(["method", "benchmark"])["tau"].mean().unstack().min(axis=1).sort_values(ascending=False)
    rows += [fixed[fixed["method"].str.startswith("previous")]]
    rows += [in_sample[in_sample["method"] == m] for m in [*ranked.index[:singles], "random"] if m in set(in_sample["method"])]
    frame = pd.concat(rows)
    means = frame.pivot_table(index="method", columns=["benchmark", "protocol"], values="tau", aggfunc="mean",
                              sort=False)
    means.columns = [f"{b} {p}" for b, p in means.columns]
    regret = frame.pivot_table(index="method", columns="benchmark", values="regret", aggfunc="mean", sort=False)
    return means.assign(worst_task=frame.groupby("method", sort=False)["tau"].min(),
                        **{f"{b} regret": regret[b] for b in BENCHMARKS}).reset_index()


def targets(goal_folds: pd.DataFrame, one_folds: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """Issue 22's targets per benchmark and protocol, held out (leave-one-dataset-out)."""
    frame = pd.concat(_held_out_methods(goal_folds, one_folds, "leave-one-dataset-out")
                      + [fixed[fixed["method"] == "logme"]])
    stats_ = frame.groupby(["method", "benchmark", "protocol"]).agg(tau=("tau", "mean"), worst=("tau", "min"),
                                                                  regret=("regret", "mean"))
    regret_by_benchmark = frame.groupby(["method", "benchmark"])["regret"].mean()
    rows = []
    for (benchmark, protocol), answer in stats_.loc["answer for the task's goal"].iterrows():
        goal_single = stats_.loc[("best single metric for the goal", benchmark, protocol)]
        any_single = stats_.loc[("best single metric for every protocol", benchmark, protocol)]
        rows.append({"benchmark": benchmark, "protocol": protocol, "answer mean tau": answer["tau"],
                     "minus best single for the goal": answer["tau"] - goal_single["tau"],
                     "minus best single for every protocol": answer["tau"] - any_single["tau"],
                     "answer worst task": answer["worst"],
                     "answer regret (benchmark)": regret_by_benchmark[("answer for the task's goal", benchmark)],
                     "logme regret (benchmark)": regret_by_benchmark[("logme", benchmark)]})
    return pd.DataFrame(rows)


def report(tasks: Tasks, goal_folds: pd.DataFrame, one_folds: pd.DataFrame, fixed: pd.DataFrame,
           finals: dict[str, tuple[Config, np.ndarray | None]], shortlists: dict[str, list],
           costs: dict[str, float]) -> str:
    in_code = {goal: ANSWERS[goal] for goal in finals}
    chosen = "\n".join(
        f"* **{goal}** (ground truths {', '.join(sorted({t[2] for t in tasks.names if GOAL_OF_PROTOCOL[t[2]] == goal}))}): "
        f"{config.label}"
        + ("" if weights is None else " with weights " + ", ".join(f"{m} {w:.3f}" for m, w in zip(config.members, weights)))
        + f"; shortlist {', '.join(shortlists[goal])}. In code (`hf_tsel.metrics.consensus.ANSWERS`): "
        + ("the same." if (in_code[goal].members, in_code[goal].rule) == (config.members, "zscore" if len(config.members) == 1 else config.rule)
           else f"DIFFERENT ({'+'.join(in_code[goal].members)}, {in_code[goal].rule}).")
        for goal, (config, weights) in finals.items())
    held = summary_by(pd.concat(_held_out_methods(goal_folds, one_folds, "leave-one-dataset-out")
                                + [f.assign(method=f["method"] + " (leave-one-benchmark-out)") for f in
                                   _held_out_methods(goal_folds, one_folds, "leave-one-benchmark-out")]), "method")
    held = held.sort_values(["benchmark", "protocol", "method"])
    candidates = []
    for goal in finals:
        goal_rows = fixed[fixed["protocol"].map(GOAL_OF_PROTOCOL) == goal]
        per = goal_rows.groupby(["method", "benchmark"]).agg(mean_tau=("tau", "mean"), worst_tau=("tau", "min"),
                                                              mean_regret=("regret", "mean")).unstack()
        per.columns = [f"{b} {q}" for q, b in per.columns]
        per = per.assign(worst_benchmark_mean=per[[f"{b} mean_tau" for b in BENCHMARKS]].min(axis=1))
        candidates.append(f"### Goal {goal}\n\n"
                          + _table(per.sort_values("worst_benchmark_mean", ascending=False).reset_index()))
    return "\n\n".join([
        "# Answer selection over both benchmarks, per goal (generated by benchmarks/consensus_selection.py)",
        f"Tasks (benchmark, dataset, protocol): {len(tasks.names)} "
        f"({', '.join(f'{b}: {sum(t[0] == b for t in tasks.names)}' for b in BENCHMARKS)}). "
        f"Candidate pool (metrics with a score for every model of every task): {len(tasks.pool)}: "
        f"{', '.join(tasks.pool)}. A goal is what the user trains on the chosen backbone; its tasks are those whose "
        "ground truth is that kind of training. Criterion: the worst benchmark's mean weighted tau over the goal's "
        "training tasks, ties broken by mean top-1 regret; one-standard-error rule towards fewer members.",
        "**Chosen on all tasks of each goal:**\n\n" + chosen,
        f"Cost constraint: member sets whose summed cost (each metric alone as the member, relative to the previous "
        f"answer, `answer_costs.csv`) exceeds {COST_BUDGET:g} are not candidates for the answer: "
        + ", ".join(f"{m} {costs.get(m, math.inf):.2f}" for m in tasks.pool if not m.startswith("prior:")) + ".",
        "## Summary (the README's table): mean weighted tau per benchmark and protocol",
        "Held out, leave-one-dataset-out: `answer for the task's goal` is the configuration chosen for the task's "
        "goal without the task's dataset; `best single metric for the goal` is the single metric chosen the same way; "
        "`one answer for every protocol` is the previous procedure (one configuration chosen over every protocol, "
        "no one-standard-error rule) and `best single metric for every protocol` its single-metric counterpart. "
        "Below them, in-sample: the previous answer's fixed configuration and the best single metrics by the worst "
        "benchmark's mean.",
        _table(readme_table(goal_folds, one_folds, fixed)),
        "## Targets (issue 22), held out (leave-one-dataset-out)",
        _table(targets(goal_folds, one_folds, fixed)),
        "## Held-out result, per benchmark and protocol",
        _table(held),
        "## Held-out choices per task (answer for the task's goal)", _table(goal_folds),
        "## Held-out choices per task (one answer for every protocol)", _table(one_folds),
        "## Every candidate single metric on each goal's tasks (in-sample), sorted by the worst benchmark's mean tau",
        *candidates,
    ]) + "\n"


def load(results: Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {b: (pd.read_csv(results / f"{b}_scores.csv"), read_ground_truth(results / f"{b}_ground_truth.csv"))
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
    goal_folds, finals, shortlists = [], {}, {}
    for goal in GOALS:
        names = [t for t in tasks.names if GOAL_OF_PROTOCOL[t[2]] == goal]
        goal_folds.append(held_out(tasks, names, args.shortlist, args.max_members, costs).assign(goal=goal))
        config, weights, shortlists[goal] = select(tasks, names, args.shortlist, args.max_members, costs)
        finals[goal] = (config, weights)
    goal_folds = pd.concat(goal_folds, ignore_index=True)
    one_folds = held_out(tasks, tasks.names, args.shortlist, args.max_members, costs, one_se=False)
    fixed = fixed_rows(tasks, finals, PREVIOUS_ANSWER)
    text = report(tasks, goal_folds, one_folds, fixed, finals, shortlists, costs)
    (RESULTS / "consensus_selection.md").write_text(text, encoding="utf-8")
    pd.concat([goal_folds.assign(kind="held-out, per goal"), one_folds.assign(kind="held-out, one answer"),
               fixed.assign(kind="in-sample")]).to_csv(RESULTS / "consensus_selection.csv", index=False,
                                                       float_format="%.4f")
    print(text)


if __name__ == "__main__":
    main()
