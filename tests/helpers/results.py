"""Results tables for the publishing and Space tests: validated, with deterministic pseudo-random scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hf_tsel.results import empty_record, validate_results

MODELS = ["resnet50", "vit-b16", "dino-s16", "mae-b16", "clip-b32", "convnext-t"]


def make_results(run_id: str, models: list[str], *, dataset: str = "org/flowers", metrics=("logme", "leep"),
                 timestamp: str = "2026-01-01T00:00:00+00:00", seed: int = 0, accuracy: bool = False) -> pd.DataFrame:
    """A validated results table with deterministic pseudo-random scores."""
    rng = np.random.default_rng(seed)
    families = ["supervised-cnn", "dino", "mae", "clip"]
    pretraining = {"supervised-cnn": "supervised", "dino": "self-supervised", "mae": "self-supervised",
                   "clip": "language-supervised"}
    records = []
    for i, model in enumerate(models):
        family = families[i % len(families)]
        gt = float(rng.uniform(0.5, 0.95)) if accuracy else None
        for metric in metrics:
            records.append(empty_record(
                dataset=dataset, split="train", model=model, model_id=f"timm/{model}", model_revision="a" * 40,
                family=family, pretraining=pretraining[family], metric=metric,
                score=float(rng.normal() + (gt or 0) * 5), num_samples=200, num_classes=5, seed=0,
                tool_version="0.1.0", timestamp=timestamp, hardware="cpu: test", seconds=0.5,
                extraction_seconds=2.0, run_id=run_id, ground_truth_accuracy=gt,
                ground_truth_protocol="linear-probe" if accuracy else None))
    return validate_results(pd.DataFrame(records))
