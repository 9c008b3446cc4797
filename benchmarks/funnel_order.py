"""Which order should the budget funnel take candidates in? A replay on both project benchmarks.

For each task (benchmark, dataset, ground-truth protocol) of ``benchmarks/results/{zoo,offline}_*.csv``
the funnel's admission (:meth:`hf_tsel.funnel.Funnel.plan`, no scoring time, nothing cached) walks the
models in a given order with a budget of 10, 25 or 50 % of the zoo's total cost, a model's cost being
its parameter count (the funnel's estimate for models of one input size on one sample). Among the
admitted models the committed consensus score picks one; the regret is the best ground-truth accuracy
of the whole zoo minus the picked model's, and "best scored" says whether the zoo's best model was
admitted at all. Orders: the funnel's (:func:`hf_tsel.funnel.order_candidates`, cheapest first), largest
first (``prior:params`` read as "bigger transfers better"), widest features first (``prior:feature_dim``)
and random (mean over 200 seeded permutations).

Usage: ``python benchmarks/funnel_order.py [--output benchmarks/results/funnel_order.md]`` (reads only the
committed CSV files; a few seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pandas as pd

from hf_tsel.funnel import Candidate, Funnel, order_candidates
from hf_tsel.groundtruth.table import read_ground_truth

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.10, 0.25, 0.50)
RANDOM_ORDERS = 200


def _admitted(order: list[str], cost: pd.Series, fraction: float) -> list[str]:
    candidates = [Candidate(SimpleNamespace(name=m, hub_id=m), float(cost[m])) for m in order]
    funnel = Funnel(candidates, seconds=fraction * float(cost.sum()), started=0.0, clock=lambda: 0.0)
    return [c.name for c in funnel.plan()[0]]


def _outcome(chosen: list[str], accuracy: pd.Series, consensus: pd.Series) -> tuple[float, float]:
    if not chosen:
        return float("nan"), 0.0
    pick = max(chosen, key=lambda m: consensus[m])
    return float(accuracy.max() - accuracy[pick]), float(accuracy.idxmax() in chosen)


def replay(benchmark: str) -> pd.DataFrame:
    scores = pd.read_csv(RESULTS / f"{benchmark}_scores.csv")
    truth = read_ground_truth(RESULTS / f"{benchmark}_ground_truth.csv")
    params = scores[scores.metric == "prior:params"].groupby("model").score.first()
    width = scores[scores.metric == "prior:feature_dim"].groupby("model").score.first()
    consensus = scores[scores.metric == "consensus"].set_index(["dataset", "model"]).score
    rng = np.random.default_rng(0)
    rows = []
    for (dataset, protocol), group in truth.groupby(["dataset", "protocol"]):
        accuracy = group.set_index("model").accuracy
        models = [m for m in accuracy.index if m in params.index and (dataset, m) in consensus.index]
        accuracy, cost, picked = accuracy[models], params[models], consensus[dataset][models]
        orders: dict[str, Callable[[], list[str]]] = {
            "funnel: cheapest first": lambda: [c.name for c in order_candidates(
                [Candidate(SimpleNamespace(name=m), float(cost[m])) for m in models])],
            "largest first (prior:params)": lambda: sorted(models, key=lambda m: -cost[m]),
            "widest first (prior:feature_dim)": lambda: sorted(models, key=lambda m: -width[m]),
        }
        for fraction in FRACTIONS:
            for name, order in orders.items():
                regret, found = _outcome(_admitted(order(), cost, fraction), accuracy, picked)
                rows.append((benchmark, dataset, protocol, fraction, name, regret, found))
            draws = [_outcome(_admitted(list(rng.permutation(models)), cost, fraction), accuracy, picked)
                     for _ in range(RANDOM_ORDERS)]
            rows.append((benchmark, dataset, protocol, fraction, "random",
                         float(np.nanmean([d[0] for d in draws])), float(np.mean([d[1] for d in draws]))))
    return pd.DataFrame(rows, columns=["benchmark", "dataset", "protocol", "fraction", "order", "regret",
                                       "best_scored"])


def summary(table: pd.DataFrame) -> str:
    lines = ["# Funnel order: regret of the consensus pick among the models a budget admits",
             "", "Produced by `python benchmarks/funnel_order.py` from the committed benchmark CSVs. Budget: a "
             "fraction of the zoo's total cost (cost = parameters). Regret: best accuracy of the whole zoo minus "
             "that of the consensus pick among the admitted models (mean over the benchmark's tasks, both "
             "ground-truth protocols); best scored: share of tasks whose best model was admitted.", ""]
    for benchmark, part in table.groupby("benchmark", sort=False):
        tasks = part.groupby(["dataset", "protocol"]).ngroups
        lines += [f"## {benchmark} benchmark ({tasks} tasks)", "",
                  "| order | " + " | ".join(f"regret @ {f:.0%}" for f in FRACTIONS) + " | "
                  + " | ".join(f"best scored @ {f:.0%}" for f in FRACTIONS) + " |",
                  "|---|" + "---:|" * (2 * len(FRACTIONS))]
        means = part.groupby(["order", "fraction"], sort=False)[["regret", "best_scored"]].mean()
        for order in dict.fromkeys(part.order):
            regrets = " | ".join(f"{means.loc[(order, f), 'regret']:.3f}" for f in FRACTIONS)
            found = " | ".join(f"{means.loc[(order, f), 'best_scored']:.2f}" for f in FRACTIONS)
            lines.append(f"| {order} | {regrets} | {found} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(RESULTS / "funnel_order.md"))
    args = parser.parse_args()
    text = summary(pd.concat([replay("zoo"), replay("offline")], ignore_index=True))
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
