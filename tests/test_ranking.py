"""hf_tsel.rank: scores in the results schema, not-applicable metrics, failed models, model-set metrics, the goal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import hf_tsel
from hf_tsel.errors import UserError
from hf_tsel.metrics import get_metric, list_metrics
from hf_tsel.defaults import DEFAULT_METRICS
from hf_tsel.scoring import resolve_metrics
from hf_tsel.results import RESULT_FIELDS, validate_results

from tests.helpers.data import image_dataset
from tests.helpers.models import FakeBackbone, route_model_loading, write_zoo


@pytest.fixture
def noisy_zoo(fake_models, tmp_path, monkeypatch):
    """The fake zoo plus 'noise', whose features ignore the image."""
    from hf_tsel import backbones

    load = backbones.load_backbone

    class NoiseBackbone(FakeBackbone):
        def embed(self, batch):
            return torch.randn(len(batch), self.feature_dim, generator=torch.Generator().manual_seed(len(batch))), None

    def load_with_noise(entry, **kwargs):
        return NoiseBackbone(entry, source_classes=None) if entry.name == "noise" else load(entry, **kwargs)

    route_model_loading(monkeypatch, load_with_noise)
    return write_zoo(tmp_path / "noisy.yaml", ["alpha", "noise", "missing", "headless"]), fake_models[1]


def test_rank_returns_valid_results_with_informative_model_first(tmp_path, noisy_zoo):
    zoo, _ = noisy_zoo
    df = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["logme", "leep"], cache_dir=tmp_path)
    assert list(df.columns) == list(RESULT_FIELDS)
    validate_results(df)
    logme = df[df.metric == "logme"].set_index("model")
    assert logme.loc["noise", "rank"] == 3 and logme.loc["alpha", "score"] > logme.loc["noise", "score"]
    assert logme.loc["alpha", "num_samples"] == 30 and logme.loc["alpha", "num_classes"] == 3
    leep = df[df.metric == "leep"].set_index("model")
    assert leep.loc["noise", "note"].startswith("not applicable") and np.isnan(leep.loc["noise", "score"])
    assert pd.isna(leep.loc["noise", "rank"]) and leep.loc["alpha", "rank"] == 1
    failed = df[df.model == "missing"]
    assert len(failed) == 3 and failed["score"].isna().all() and failed["note"].str.contains("not_found").all()
    run = df.attrs["run"]
    assert run["metrics"] == ["logme", "leep", "etran_lda"] and set(run["stage_seconds"]) == {"data", "extraction", "metrics", "total"}
    assert {m["name"]: m["status"] for m in run["models"]}["missing"] == "failed"


def test_rank_reads_the_zoo_once_and_records_no_query_for_a_hand_written_zoo(tmp_path, noisy_zoo, monkeypatch):
    from hf_tsel.extraction import resolution

    reads = []
    read = resolution.load_zoo_or_search
    monkeypatch.setattr(resolution, "load_zoo_or_search", lambda zoo: reads.append(zoo) or read(zoo))
    zoo, _ = noisy_zoo
    df = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path)
    assert reads == [str(zoo)]  # the metadata check and the extraction share one resolution
    assert df.attrs["run"]["zoo_query"] is None
    budgeted = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path,
                            budget="1h")
    assert reads == [str(zoo)] * 2 and budgeted.attrs["run"]["funnel"]["budget"] == "1h"


def test_transform_and_model_set_metrics(tmp_path, noisy_zoo):
    zoo, _ = noisy_zoo
    model_set = [m.name for m in list_metrics(include_transforms=False) if m.consumes == "model_set"]
    assert {"etran", "ncti"} <= set(model_set)
    metrics = ["ped+logme", *model_set[:1]]
    df = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=metrics, cache_dir=tmp_path)
    ped = df[df.metric == "ped+logme"].set_index("model")
    assert ped.loc["alpha", "score"] > ped.loc["noise", "score"]
    scores = df[df.metric == model_set[0]].dropna(subset=["score"])
    assert set(scores["model"]) == {"alpha", "noise", "headless"}


def test_unknown_metric_fails_before_any_work(tmp_path, fake_models):
    zoo, loads = fake_models
    with pytest.raises(UserError, match="unknown metric 'logmee'.*hf-tsel metrics"):
        hf_tsel.rank("does/not-matter", zoo=str(zoo), metrics="logme,logmee", cache_dir=tmp_path)
    assert loads == []


def test_default_metrics_are_registered():
    assert [s.name for s in resolve_metrics(None)] == list(DEFAULT_METRICS)
    from hf_tsel.metrics.consensus import ANSWERS

    for config in ANSWERS.values():  # every goal's answer reuses the run's scores
        assert {get_metric(name).name for name in config.members} <= set(DEFAULT_METRICS)


def test_backbone_details_reach_the_run_metadata_and_the_cache_manifest(tmp_path, fake_models):
    zoo, _ = fake_models
    for expected_status in ("extracted", "cached"):
        df = hf_tsel.rank(image_dataset(per_class=4), zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path)
        models = {m["name"]: m for m in df.attrs["run"]["models"]}
        assert models["alpha"]["status"] == expected_status
        assert models["alpha"]["details"] == {"features": "colour statistics"}
    manifests = [json.loads(p.read_text()) for p in tmp_path.glob("*/manifest.json")]
    assert manifests and all(m["details"] == {"features": "colour statistics"} for m in manifests)


def test_goal_picks_the_answer_and_reaches_the_rows_and_the_space(tmp_path, noisy_zoo):
    from hf_tsel.metrics.consensus import ANSWERS
    from hf_tsel.publish.leaderboard import recommendation_html, target_label

    zoo, _ = noisy_zoo
    df = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path,
                      goal="linear-probe", n_boot=5)
    answer = df[df.metric == "consensus"]
    assert set(answer["goal"]) == {"linear-probe"} and answer["p_top1"].notna().all()
    recommendation = df.attrs["run"]["recommendation"]
    assert recommendation["goal"] == "linear-probe" and recommendation["members"] == list(ANSWERS["linear-probe"].members)
    assert recommendation["line"].startswith("Train a linear probe on alpha")
    target = target_label(*df[["dataset", "config", "split"]].iloc[0])
    assert "Train a linear probe on alpha" in recommendation_html(df, target)
    assert df[df.metric != "consensus"]["goal"].isna().all()
    with pytest.raises(UserError, match="unknown goal 'probe'.*finetune, linear-probe"):
        hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path, goal="probe")
