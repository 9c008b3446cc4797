"""Fixtures for the publishing tests: results tables, the Hub stand-in on 127.0.0.1 and a CLI runner.

``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, so pushes run in subprocesses whose
environment points at the stand-in (``tests/hub/``) and never at huggingface.co.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hf_tsel.results import write_results
from tests.helpers.results import MODELS, make_results

from ..hub.harness import client_env
from ..hub.server import HubServer


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
