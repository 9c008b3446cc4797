"""Source-mode persistence ratio in a ranking run: reference images extracted once per model, cached, target-independent."""

from __future__ import annotations

import datasets
import numpy as np
import pandas as pd
import pytest

import hf_tsel
from hf_tsel.metrics import MetricInputError, get_metric, score

from tests.helpers.data import class_images, image_dataset


def _dataset(num_classes: int, per_class: int, seed: int) -> datasets.Dataset:
    images, labels = class_images(num_classes, per_class, seed=seed)
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"c{i}" for i in range(num_classes)])})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)


@pytest.fixture
def reference_zoo(tmp_path, fake_models):
    """alpha and beta share a 4-class reference set (saved DatasetDict), gamma names none, broken a missing folder."""
    datasets.DatasetDict({"validation": _dataset(4, 10, seed=3)}).save_to_disk(str(tmp_path / "reference"))
    reference = "{dataset: ./reference, split: validation, max_samples: 36}"
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text("models:\n"
                   f"  - {{name: alpha, hub_id: fake/alpha, loader: timm, source_reference: {reference}}}\n"
                   f"  - {{name: beta, hub_id: fake/beta, loader: timm, source_reference: {reference}}}\n"
                   "  - {name: gamma, hub_id: fake/gamma, loader: timm}\n"
                   "  - {name: broken, hub_id: fake/broken, loader: timm, source_reference: ./no-such-folder}\n")
    return zoo, fake_models[1]


def _scores(df, metric: str) -> dict:
    rows = df[df.metric == metric].set_index("model")
    return {m: (rows.loc[m, "score"], rows.loc[m, "note"]) for m in rows.index}


def test_source_mode_is_a_model_prior_extracted_once_and_reused_for_every_target(tmp_path, reference_zoo):
    zoo, loads = reference_zoo
    first = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["persistence_ratio", "logme"],
                         cache_dir=tmp_path / "cache", n_boot=0)
    pr = _scores(first, "persistence_ratio")
    assert np.isfinite(pr["alpha"][0]) and np.isfinite(pr["beta"][0]) and pr["alpha"][0] != pr["beta"][0]
    assert loads.count("alpha") == 2  # target images, then reference images
    reference = {m["name"]: m["source_reference"] for m in first.attrs["run"]["models"]}
    assert (reference["alpha"]["num_samples"], reference["alpha"]["num_classes"]) == (36, 4)
    assert reference["alpha"]["split"] == "validation" and reference["gamma"] is None

    # another target (other images, 2 classes): same PR, and the reference comes from the cache
    loads.clear()
    events = []
    second = hf_tsel.rank(_dataset(2, 12, seed=9), zoo=str(zoo), metrics=["persistence_ratio", "logme"],
                          cache_dir=tmp_path / "cache", n_boot=0, on_event=events.append)
    assert loads.count("alpha") == 1  # only the new target's features
    datasets_read = [e.message for e in events if e.kind == "dataset"]
    assert [m.startswith("source reference set: ") for m in datasets_read] == [False, True]  # target, then the shared set
    again = _scores(second, "persistence_ratio")
    assert again["alpha"][0] == pr["alpha"][0] and again["beta"][0] == pr["beta"][0]
    assert _scores(second, "logme")["alpha"][0] != _scores(first, "logme")["alpha"][0]


def test_models_without_usable_reference_get_a_reason_and_keep_their_other_scores(tmp_path, reference_zoo):
    zoo, _ = reference_zoo
    df = hf_tsel.rank(image_dataset(per_class=10), zoo=str(zoo), metrics=["persistence_ratio", "logme"],
                      cache_dir=tmp_path / "cache", n_boot=0)
    pr, logme = _scores(df, "persistence_ratio"), _scores(df, "logme")
    assert np.isnan(pr["gamma"][0]) and pr["gamma"][1].startswith("not applicable: the zoo entry names no source_reference")
    assert "persistence_ratio_head" in pr["gamma"][1]
    assert np.isnan(pr["broken"][0]) and pr["broken"][1].startswith("failed: source reference")
    assert "no-such-folder" in pr["broken"][1]
    assert all(np.isfinite(logme[m][0]) for m in ("alpha", "beta", "gamma", "broken"))


def test_from_cache_names_the_missing_reference_features(tmp_path, reference_zoo):
    zoo, loads = reference_zoo
    target = image_dataset(per_class=10)
    hf_tsel.rank(target, zoo=str(zoo), metrics=["logme"], cache_dir=tmp_path / "cache", n_boot=0)  # no reference
    loads.clear()
    df = hf_tsel.rank(target, zoo=str(zoo), metrics=["persistence_ratio"], cache_dir=tmp_path / "cache",
                      from_cache=True, n_boot=0)
    assert loads == []
    note = _scores(df, "persistence_ratio")["alpha"][1]
    assert note.startswith("failed: source reference") and "without --from-cache" in note


def test_reference_metrics_are_refused_where_they_would_score_target_data():
    with pytest.raises(MetricInputError, match="consumes reference_features"):
        get_metric("ped+persistence_ratio")
    assert "ped+persistence_ratio" not in {m.name for m in hf_tsel.metrics.list_metrics()}
    from hf_tsel.metrics.consensus import member_problem

    assert "source reference" in member_problem("persistence_ratio", num_samples=100, feature_dims={"a": 8},
                                                has_head={"a": False}, priors=None)
    rng = np.random.default_rng(0)
    with pytest.raises(MetricInputError, match="at least 2"):
        score("persistence_ratio", rng.normal(size=(10, 3)), np.zeros(10, dtype=int))


def test_hub_model_with_a_hub_reference_dataset_offline(tmp_path, offline_hub):
    """The real Hub code paths (timm hf-hub:, datasets.load_dataset) from a Hugging Face cache, offline."""
    from hf_tsel.zoo import parse_entry

    from tests.helpers.data import write_hub_dataset

    write_hub_dataset(offline_hub.hub_dir, "hf-tsel-test/source-sample", {"validation": _dataset(4, 6, seed=5)})
    entry = parse_entry({"name": "tiny-resnet", "hub_id": offline_hub.ids["timm_cnn"],
                         "source_reference": {"dataset": "hf-tsel-test/source-sample", "split": "validation"}})
    df = hf_tsel.rank(image_dataset(per_class=6), models=[entry], metrics=["persistence_ratio"],
                      cache_dir=tmp_path / "cache", n_boot=0)
    value, note = _scores(df, "persistence_ratio")["tiny-resnet"]
    assert np.isfinite(value) and pd.isna(note)
    (model,) = df.attrs["run"]["models"]
    assert model["source_reference"]["dataset"] == "hf-tsel-test/source-sample"
    assert (model["source_reference"]["num_samples"], model["source_reference"]["num_classes"]) == (24, 4)
