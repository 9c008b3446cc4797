"""Zoo benchmark: tasks never share images with sources, the tiny configuration end to end, the statistics."""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hf_tsel.offline.packaged_data import FASHION_MNIST_DIR

needs_fashion = pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                   reason="needs the Debian package dataset-fashion-mnist")


def _image_set(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def test_mnist_sources_and_targets_share_no_image():
    from hf_tsel.offline.zoo.tasks import TARGET_TASKS, source_split

    source = source_split("mnist10", 200, seed=0)
    held_out = source_split("mnist10", 200, seed=0, held_out=True)
    train, test = TARGET_TASKS["mnist"].splits()
    assert len(source.labels) == 2000 and source.num_classes == 10
    assert not _image_set(source.images) & _image_set(held_out.images)
    assert not (_image_set(source.images) | _image_set(held_out.images)) & (_image_set(train.images) |
                                                                            _image_set(test.images))
    assert not _image_set(train.images) & _image_set(test.images)


@pytest.mark.parametrize("source", ["mnist10", pytest.param("fmnist-tops5", marks=needs_fashion)])
def test_source_reference_sets_share_no_image_with_any_pretraining_draw(source):
    from hf_tsel.offline.zoo.models import RECIPES, training_draw
    from hf_tsel.offline.zoo.tasks import source_reference_split, source_split

    draws = [training_draw(r) for r in RECIPES["full"] if r.method != "random"]
    reference = source_reference_split(source, 40, trained_on=draws)
    assert np.bincount(reference.labels).tolist() == [40] * reference.num_classes
    trained = set().union(*(_image_set(source_split(s, n, seed=seed).images) for s, n, seed in draws
                            if s.startswith("fmnist") == source.startswith("fmnist")))
    assert not _image_set(reference.images) & trained
    assert source_split(source, 1, seed=0).class_names == reference.class_names


@needs_fashion
def test_fashion_targets_are_fixed_stratified_and_shifted():
    from hf_tsel.offline.zoo.tasks import TARGET_TASKS

    train, test = TARGET_TASKS["fmnist-tops"].splits()
    assert train.class_names == ["t-shirt/top", "pullover", "coat", "shirt"]
    assert np.bincount(train.labels).tolist() == [50] * 4 and np.bincount(test.labels).tolist() == [40] * 4
    again, _ = TARGET_TASKS["fmnist-tops"].splits()
    assert np.array_equal(train.images, again.images)  # seeded: the same split every time
    plain, _ = TARGET_TASKS["fmnist"].splits()
    inverted, _ = TARGET_TASKS["fmnist-inverted"].splits()
    assert np.array_equal(inverted.images, 255 - plain.images)


@needs_fashion
def test_tiny_zoo_benchmark_end_to_end_and_from_cache(tmp_path):
    """3 models x 2 tasks: built, loaded by the timm loader, scored and measured; then all from cache."""
    from hf_tsel.groundtruth.table import ground_truth_rows, read_ground_truth, seed_rows
    from hf_tsel.offline.zoo.benchmark import portable_zoo_yaml, run_zoo_benchmark, tiny_config, write_results
    from hf_tsel.zoo import load_zoo

    metrics = ("logme", "leep", "etran", "ped+logme", "persistence_ratio")
    config = replace(tiny_config(tmp_path / "work"), metrics=metrics)
    messages: list[str] = []
    started = time.process_time()  # CPU seconds: wall time on a shared machine depends on the other jobs
    result = run_zoo_benchmark(config, log=messages.append)
    first_run = time.process_time() - started

    names = ["resnet-xxs-fmnist10", "efficientnet-xxs-rotation", "resnet-xxs-random"]
    entries = load_zoo(result.zoo_path)
    assert [e.name for e in entries] == names
    for entry in entries:
        assert (tmp_path / "work" / "models" / entry.name / "model.safetensors").is_file()
        assert entry.loader == "timm" and "params=" in entry.notes
    source_accuracy = result.models.set_index("model")["source_accuracy"]
    assert source_accuracy["resnet-xxs-fmnist10"] > source_accuracy["resnet-xxs-random"] + 0.2
    assert source_accuracy["efficientnet-xxs-rotation"] > 0.35  # 4-way rotation prediction; chance is 0.25

    assert len(result.scores) == 2 * 3 * len(metrics)
    leep = result.scores[result.scores["metric"] == "leep"].set_index(["dataset", "model"])["score"]
    assert all(math.isfinite(v) for v in leep.xs("resnet-xxs-fmnist10", level="model"))  # kept its source head
    assert leep.xs("resnet-xxs-random", level="model").isna().all()  # no head: not applicable
    # source mode: trained models embed their source task's reference images (no image they trained on), once
    pr = result.scores[result.scores["metric"] == "persistence_ratio"].set_index(["dataset", "model"])["score"]
    for model in ("resnet-xxs-fmnist10", "efficientnet-xxs-rotation"):
        values = pr.xs(model, level="model")
        assert values.notna().all() and values.nunique() == 1  # a model prior: the same on every task
    assert pr.xs("resnet-xxs-random", level="model").isna().all()  # no source data
    reference = entries[0].source_reference
    assert reference["dataset"] == str((tmp_path / "work" / "source-reference" / "fmnist10").resolve())
    ground_truth = ground_truth_rows(result.ground_truth)
    assert len(ground_truth) == 2 * 3 * 2 and set(ground_truth["protocol"]) == {"linear-probe", "full"}
    assert ground_truth["accuracy"].between(0, 1).all()
    seeded = seed_rows(result.ground_truth)  # 2 training seeds of the fine-tune; its ground truth is their mean
    assert len(seeded) == 2 * 3 * 2 and set(seeded["protocol"]) == {"full"} and set(seeded["seed"]) == {0, 1}
    means = seeded.groupby(["dataset", "model"])["accuracy"].mean()
    full = ground_truth[ground_truth["protocol"] == "full"].set_index(["dataset", "model"])
    assert np.allclose(full["accuracy"], means.reindex(full.index)) and (full["seeds"] == 2).all()
    assert set(result.evaluation["metric"]) == set(metrics)

    paths = write_results(result, tmp_path / "results")
    scores = pd.read_csv(tmp_path / "results" / "zoo_scores.csv")
    assert list(scores.columns) == ["dataset", "model", "metric", "score"] and len(scores) == len(result.scores)
    assert list(pd.read_csv(tmp_path / "results" / "zoo_ground_truth.csv").columns) == [
        "dataset", "model", "protocol", "accuracy", "seed", "seeds"]
    pd.testing.assert_frame_equal(read_ground_truth(tmp_path / "results" / "zoo_ground_truth.csv")[
        ["dataset", "model", "protocol"]].sort_values(["dataset", "protocol", "model"]).reset_index(drop=True),
        ground_truth[["dataset", "model", "protocol"]].sort_values(["dataset", "protocol", "model"]).reset_index(drop=True))
    ceiling = pd.read_csv(tmp_path / "results" / "zoo_ceiling.csv")
    assert ceiling["dataset"].tolist() == ["fmnist", "textures"] and (ceiling["pairs"] == 1).all()
    summary = (tmp_path / "results" / "zoo_summary.md").read_text()
    assert "Linear probe vs. full fine-tune" in summary and "| logme |" in summary
    assert "| ceiling |" in summary and "of ceiling full" in summary
    assert all(p.is_file() for p in paths)
    assert "$HF_TSEL_HOME/zoo-benchmark/models/resnet-xxs-random" in portable_zoo_yaml(result)
    assert "dataset: $HF_TSEL_HOME/zoo-benchmark/source-reference/fmnist10" in portable_zoo_yaml(result)

    messages.clear()
    cached = run_zoo_benchmark(config, log=messages.append)
    assert not [m for m in messages if "built" in m or "scored" in m or "fine-tuned" in m or "probe of" in m]
    pd.testing.assert_frame_equal(cached.ground_truth, result.ground_truth)
    assert first_run < 60, f"the tiny configuration took {first_run:.0f} CPU seconds"


def _evaluation(taus: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"dataset": f"task{i}", "protocol": "full", "metric": metric, "weighted_kendall_tau": tau,
             "top1_regret": 0.0} for metric, values in taus.items() for i, tau in enumerate(values)]
    return pd.DataFrame(rows)


def test_metric_table_and_paired_bootstrap():
    from hf_tsel.offline.zoo.summary import metric_table, paired_differences

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, 12)
    evaluation = _evaluation({"good": list(0.8 + noise), "tied": list(0.8 + noise + 0.01),
                              "bad": list(0.1 + rng.normal(0, 0.05, 12))})
    table = metric_table(evaluation, "full").set_index("metric")
    assert table.loc["good", "ci_low"] < table.loc["good", "mean_tau"] < table.loc["good", "ci_high"]
    assert table.index[-1] == "bad" and table.loc["bad", "tasks"] == 12
    pairs = paired_differences(evaluation, "full").set_index(["metric_a", "metric_b"])
    assert pairs.loc[("good", "bad"), "significant"]
    assert pairs.loc[("tied", "good"), "significant"]  # a constant +0.01 shift is a consistent difference
    shuffled = _evaluation({"a": list(noise), "b": list(rng.permutation(noise))})
    assert not paired_differences(shuffled, "full")["significant"].any()


def test_protocol_agreement_per_task():
    from hf_tsel.offline.zoo.summary import protocol_agreement

    rows = [{"dataset": "t", "model": m, "protocol": p, "accuracy": a}
            for m, lp, ft in (("x", 0.9, 0.8), ("y", 0.5, 0.6), ("z", 0.2, 0.1)) for p, a in (("linear-probe", lp),
                                                                                             ("full", ft))]
    agreement = protocol_agreement(pd.DataFrame(rows))
    assert agreement.loc[0, "kendall_tau"] == pytest.approx(1.0) and agreement.loc[0, "best_full"] == "x"


def test_home_placeholder_in_zoo_files(tmp_path, monkeypatch):
    from hf_tsel.zoo import load_zoo

    monkeypatch.setenv("HF_TSEL_HOME", str(tmp_path / "home"))
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text("models:\n  - {name: m, hub_id: $HF_TSEL_HOME/zoo-benchmark/models/m, loader: timm}\n")
    assert load_zoo(zoo)[0].hub_id == str(tmp_path / "home" / "zoo-benchmark" / "models" / "m")
