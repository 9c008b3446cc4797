"""Cost of the confidence (bootstrap P(best) and rank interval) relative to the metric stage of a ranking run.

Setting of the target in issue 14: N = 1,000 samples, 8 models, features already extracted. Both
stages run exactly as in :func:`hf_tsel.rank`: :func:`hf_tsel.scoring.score_models` with the default
metrics, then :func:`hf_tsel.recommendation.consensus_records`, which reuses the member scores the
metric stage computed and adds the consensus and its bootstrap (``DEFAULT_N_BOOT`` resamples).
Features are synthetic (10 classes, widths of common backbones) so the script runs anywhere.

Usage: ``python benchmarks/recommend_speed.py [--repeats 3]``; prints one Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from hf_tsel.defaults import DEFAULT_METRICS, DEFAULT_N_BOOT
from hf_tsel.features import CachedFeatures
from hf_tsel.extraction import ModelOutcome
from hf_tsel.scoring import resolve_metrics, score_models
from hf_tsel.recommendation import consensus_records

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT)
    args = parser.parse_args()
    outcomes, labels = zoo()
    specs = resolve_metrics(DEFAULT_METRICS)
    metric_seconds, confidence_seconds = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        scored = score_models(specs, outcomes, labels)
        metric_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        records, summary = consensus_records(outcomes, labels, scored, n_boot=args.n_boot)
        confidence_seconds.append(time.perf_counter() - start)
    metric, confidence = np.median(metric_seconds), np.median(confidence_seconds)
    lines = [f"N={NUM_SAMPLES}, {len(outcomes)} models (widths {', '.join(map(str, WIDTHS))}), metrics "
             f"{', '.join(DEFAULT_METRICS)}, {args.n_boot} resamples, torch threads {torch.get_num_threads()}, "
             f"median of {args.repeats}; shared CPU under load (timings vary, the ratio is from one process)\n",
             "| stage | seconds | ratio to metric stage |", "|---|---|---|",
             f"| metric stage (score_models, default metrics) | {metric:.2f} | 1.00 |",
             f"| confidence (consensus_records: consensus + bootstrap) | {confidence:.2f} | {confidence / metric:.2f} |",
             "", summary.get("line") or records[0]["note"]]
    text = "\n".join(lines) + "\n"
    (Path(__file__).resolve().parent / "results" / "recommend_speed.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
