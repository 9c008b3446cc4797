"""Fixtures for the publishing tests: results tables, a fake Hub on 127.0.0.1 and a CLI runner.

``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, so pushes run in subprocesses whose
environment points at the fake Hub (and never at huggingface.co).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_tsel.results import empty_record, validate_results, write_results

from .fake_hub import FakeHub

FAKE_TOKEN = "hf_fakeSecretToken0123456789abcdefXYZ"
MODELS = ["resnet50", "vit-b16", "dino-s16", "mae-b16", "clip-b32", "convnext-t"]
REPO_ROOT = Path(__file__).resolve().parents[2]


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
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def hub_env(tmp_path):
    """Environment for subprocesses talking to a fake Hub (call with the hub)."""
    def env_for(hub: FakeHub, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_TOKEN=FAKE_TOKEN, HF_HOME=str(tmp_path / "hf_home"),
                   HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY="127.0.0.1,localhost",
                   PYTHONPATH=str(REPO_ROOT))
        env.update(extra)
        return env
    return env_for


# like the installed `hf-tsel` script (`python -m hf_tsel.cli` would give a second copy of the cli module)
_CLI = [sys.executable, "-c", "import sys; from hf_tsel.cli import main; sys.exit(main(sys.argv[1:]))"]


def run_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*_CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([*_CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT)


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
    write_results(flowers, folder / "flowers.parquet", {})
    pets = make_results("run-2", MODELS[:3], dataset="org/pets", seed=5)
    document = {"schema_version": "1.0", "run": {}, "records": json.loads(pets.to_json(orient="records"))}
    document["records"][0]["num_samples"] = "many"  # one malformed record among valid ones
    (folder / "pets.json").write_text(json.dumps(document))
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(folder / "foreign.csv", index=False)
    (folder / "broken.json").write_text("{not json")
    return folder
