"""Fixtures for the publishing tests: results tables, the Hub stand-in on 127.0.0.1 and a CLI runner.

``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, so pushes run in subprocesses whose
environment points at the stand-in (``tests/hub/``) and never at huggingface.co.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hf_tsel.results import empty_record, validate_results, write_results

from ..hub.harness import REPO_ROOT, client_env, run_cli, start_cli  # noqa: F401 (used by the test modules)
from ..hub.harness import TEST_TOKEN as FAKE_TOKEN
from ..hub.server import HubServer

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


@pytest.fixture
def fake_hub():
    with HubServer() as hub:
        yield hub


@pytest.fixture
def hub_env(tmp_path):
    """Environment for subprocesses talking to a Hub stand-in (call with the hub)."""
    def env_for(hub: HubServer, **extra: str) -> dict[str, str]:
        return client_env(hub.url, tmp_path, **extra)
    return env_for


@pytest.fixture
def results_folder(tmp_path):
    """Two targets' results plus a malformed record, a foreign CSV and a broken JSON file."""
    folder = tmp_path / "results"
    flowers = make_results("run-1", MODELS, accuracy=True, metrics=("logme", "leep", "nleep", "consensus"))
    consensus = flowers["metric"] == "consensus"
    shares = np.linspace(0.4, 0.0, consensus.sum())  # P(best) by consensus rank, as hf_tsel.recommend writes it
    flowers.loc[consensus, "p_top1"] = shares[flowers.loc[consensus, "rank"].to_numpy(int) - 1] / shares.sum()
    flowers.loc[consensus, "rank_low"] = (flowers.loc[consensus, "rank"] - 1).clip(lower=1)
    flowers.loc[consensus, "rank_high"] = flowers.loc[consensus, "rank"] + 1
    flowers.loc[consensus, "goal"] = "finetune"
    write_results(flowers, folder / "flowers.parquet", {})
    pets = make_results("run-2", MODELS[:3], dataset="org/pets", seed=5)
    document = {"schema_version": "1.0", "run": {}, "records": json.loads(pets.to_json(orient="records"))}
    document["records"][0]["num_samples"] = "many"  # one malformed record among valid ones
    (folder / "pets.json").write_text(json.dumps(document))
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(folder / "foreign.csv", index=False)
    (folder / "broken.json").write_text("{not json")
    return folder
