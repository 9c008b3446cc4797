"""Cost of the answer: the confidence relative to the metric stage, and the whole answer against the previous one.

Setting of the target in issue 14: N = 1,000 samples, 8 models, features already extracted. Both
stages run exactly as in :func:`hf_tsel.rank`: :func:`hf_tsel.scoring.score_models` with the default
metrics, then :func:`hf_tsel.recommendation.consensus_records`, which reuses the member scores the
metric stage computed and adds the consensus and its bootstrap (``DEFAULT_N_BOOT`` resamples).
Features are synthetic (10 classes, widths of common backbones) so the script runs anywhere. The
whole answer (member scores computed from the features, consensus, bootstrap, calibrated P(best)) is
also timed against the previous default answer (LogME + ETran by rank) on the same features.

Usage: ``python benchmarks/recommend_speed.py [--repeats 3]``; prints one Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from hf_tsel.defaults import DEFAULT_METRICS, DEFAULT_N_BOOT
from hf_tsel.features import CachedFeatures
from hf_tsel.extraction import ModelOutcome
from hf_tsel.scoring import resolve_metrics, score_models
from hf_tsel.metrics.consensus import ANSWERS
from hf_tsel.recommendation import consensus_records, recommend

# The answer before issue 22: LogME and ETran combined by rank, the raw bootstrap share as P(best).
PREVIOUS_ANSWER = {"members": ("logme", "etran"), "rule": "rank", "weights": None, "calibration": None}

# EfficientNet, ViT-L/B, ..., ViT-S widths. Not 2048 (ResNet-50): with N = 1,000 < D = 2,048 LogME's
# float32 Gram path (gram_precision="auto") returns NaN on these synthetic features (float64 is fine).
WIDTHS = (1280, 1024, 1024, 768, 768, 512, 384, 1280)
NUM_SAMPLES, NUM_CLASSES = 1000, 10


def zoo(seed: int = 0) -> tuple[list[ModelOutcome], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), NUM_SAMPLES // NUM_CLASSES)
    outcomes = []
    for i, width in enumerate(WIDTHS):
        centres = rng.normal(size=(NUM_CLASSES, width)) * (0.2 + 0.1 * i)
        features = torch.from_numpy((centres[labels] + rng.normal(size=(NUM_SAMPLES, width))).astype(np.float32))
        entry = SimpleNamespace(name=f"model-{i}-{width}d", metadata={"feature_dim": width})
        outcomes.append(ModelOutcome(entry, "cached", features=CachedFeatures(features, np.arange(NUM_SAMPLES))))
    return outcomes, labels


def _answer_seconds(outcomes, labels, n_boot: int, **consensus) -> float:
    """Wall time of the whole answer from the features: member scores, consensus, bootstrap and P(best)."""
    features = {o.entry.name: o.features.features for o in outcomes}
    start = time.perf_counter()
    recommend(features, labels, n_boot=n_boot, **consensus)
    return time.perf_counter() - start


def member_costs(metrics: list[str], n_boot: int, out: Path) -> None:
    """Each metric's cost as the only consensus member (scores from the features, bootstrap, P(best)), relative
    to the previous answer, one fresh subprocess per metric, capped at 3x the previous answer's time.

    The consensus selection (``benchmarks/consensus_selection.py``) adds the members' ratios up and keeps only
    member sets within the cost target (2x the previous answer).
    """
    import subprocess
    import sys

    def timed(members: str, limit: float | None) -> float:
        command = [sys.executable, __file__, "--time-members", members, "--n-boot", str(n_boot)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=True)
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):  # too slow, or no answer in this regime
            return float("inf")
        return float(done.stdout.strip().splitlines()[-1])

    rows = []
    for metric in metrics:  # the baseline is timed right before each metric: the machine's load drifts
        baseline = timed(",".join(PREVIOUS_ANSWER["members"]), None)
        seconds = timed(metric, 3 * baseline)
        rows.append({"metric": metric, "seconds": seconds, "previous_answer_seconds": baseline,
                     "ratio": seconds / baseline})
    frame = pd.DataFrame(rows)
    frame.to_csv(out, index=False, float_format="%.3f")
    print(frame.to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT)
    parser.add_argument("--member-costs", help="comma-separated metrics: write each one's cost as the only consensus "
                                               "member to results/answer_costs.csv (for the consensus selection)")
    parser.add_argument("--time-members", help=argparse.SUPPRESS)  # one timing, in a fresh subprocess
    args = parser.parse_args()
    outcomes, labels = zoo()
    if args.time_members:
        members = args.time_members.split(",")
        rule = PREVIOUS_ANSWER["rule"] if tuple(members) == PREVIOUS_ANSWER["members"] else "zscore"
        print(_answer_seconds(outcomes, labels, args.n_boot, members=members, rule=rule, weights=None))
        return
    if args.member_costs:
        member_costs(args.member_costs.split(","), args.n_boot, Path(__file__).resolve().parent / "results" /
                     "answer_costs.csv")
        return
    specs = resolve_metrics(DEFAULT_METRICS)
    timings: dict[str, list[float]] = {"metric": [], "confidence": [], "previous answer": [],
                                       **{f"answer {goal}": [] for goal in ANSWERS}}
    for _ in range(args.repeats):
        start = time.perf_counter()
        scored = score_models(specs, outcomes, labels)
        timings["metric"].append(time.perf_counter() - start)
        start = time.perf_counter()
        records, summary = consensus_records(outcomes, labels, scored, n_boot=args.n_boot)
        timings["confidence"].append(time.perf_counter() - start)
        timings["previous answer"].append(_answer_seconds(outcomes, labels, args.n_boot, **PREVIOUS_ANSWER))
        for goal in ANSWERS:
            timings[f"answer {goal}"].append(_answer_seconds(outcomes, labels, args.n_boot, goal=goal))
    median = {k: float(np.median(v)) for k, v in timings.items()}
    lines = [f"N={NUM_SAMPLES}, {len(outcomes)} models (widths {', '.join(map(str, WIDTHS))}), metrics "
             f"{', '.join(DEFAULT_METRICS)}, {args.n_boot} resamples, torch threads {torch.get_num_threads()}, "
             f"median of {args.repeats}; shared CPU (timings vary with its load; each ratio is from one process)\n",
             "| stage | seconds | ratio |", "|---|---|---|",
             f"| metric stage (score_models, default metrics) | {median['metric']:.2f} | 1.00 (to the metric stage) |",
             f"| confidence in a run (consensus_records: reused member scores + bootstrap) | {median['confidence']:.2f} "
             f"| {median['confidence'] / median['metric']:.2f} (to the metric stage) |",
             f"| previous answer from the features (LogME + ETran by rank, bootstrap) | {median['previous answer']:.2f} "
             "| 1.00 (to the previous answer) |",
             *[f"| answer for goal {goal} from the features ({', '.join(config.members)}, bootstrap, calibrated "
               f"P(best)) | {median[f'answer {goal}']:.2f} | {median[f'answer {goal}'] / median['previous answer']:.2f} "
               "(to the previous answer) |" for goal, config in ANSWERS.items()],
             "", summary.get("line") or records[0]["note"]]
    text = "\n".join(lines) + "\n"
    (Path(__file__).resolve().parent / "results" / "recommend_speed.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
