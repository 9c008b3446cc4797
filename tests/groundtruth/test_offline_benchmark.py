"""Offline benchmark (real offline datasets, fake fast models) and the extra packaged backbones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hf_tsel.offline.benchmark_datasets import OFFLINE_DATASETS, load_offline_dataset
from hf_tsel.offline.packaged_data import FASHION_MNIST_DIR


@pytest.mark.parametrize("name", sorted(set(OFFLINE_DATASETS) - {"fashion-mnist"}))
def test_offline_datasets_are_stratified_and_disjoint(name):
    train, test = load_offline_dataset(name, train_per_class=5, test_per_class=4, seed=1)
    train_labels, test_labels = np.array(train["label"]), np.array(test["label"])
    assert set(np.bincount(train_labels)) == {5} and set(np.bincount(test_labels)) == {4}
    train_images = {image.tobytes() for image in train["image"]}
    test_images = {image.tobytes() for image in test["image"]}
    assert not train_images & test_images
    again, _ = load_offline_dataset(name, train_per_class=5, test_per_class=4, seed=1)
    assert again._fingerprint == train._fingerprint  # same content -> same feature-cache key


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason="needs the Debian package dataset-fashion-mnist (.ci/run installs it)")
def test_fashion_mnist_reads_the_debian_package():
    train, test = load_offline_dataset("fashion-mnist", train_per_class=2, test_per_class=1)
    assert len(train) == 20 and len(test) == 10 and train.features["label"].names[9] == "boot"


@pytest.mark.slow
def test_offline_benchmark_end_to_end_and_from_cache(fake_torch_models, tmp_path):
    from hf_tsel.offline.benchmark import (OfflineBenchmarkConfig, markdown_summary, run_offline_benchmark,
                                        write_benchmark_tables)

    zoo, loads = fake_torch_models
    config = OfflineBenchmarkConfig(datasets=("sklearn-digits",), zoos=(str(zoo),), metrics=("logme", "gbc"),
                                    train_per_class=6, test_per_class=4, finetune_epochs=2,
                                    work_dir=tmp_path / "work")
    messages: list[str] = []
    result = run_offline_benchmark(config, log=messages.append)
    assert set(result.scores["metric"]) == {"logme", "gbc"} and len(result.scores) == 6
    assert result.ground_truth.groupby("protocol").size().to_dict() == {"finetune-last": 3, "linear-probe": 3}
    assert result.ground_truth["accuracy"].between(0, 1).all()
    assert set(result.evaluation["metric"]) == {"logme", "gbc"}
    assert result.evaluation["weighted_kendall_tau"].between(-1, 1).all()
    paths = write_benchmark_tables(result, tmp_path / "results")
    assert list(pd.read_csv(paths[0]).columns) == ["dataset", "model", "metric", "score"]
    assert list(pd.read_csv(paths[1]).columns) == ["dataset", "model", "protocol", "accuracy"]
    assert "| logme |" in markdown_summary(result)

    loads.clear()
    messages.clear()
    cached = run_offline_benchmark(config, log=messages.append)
    assert loads == []  # features, scores, probes and fine-tuning all come from the caches
    assert not [m for m in messages if "scored" in m or "linear probe" in m or "fine-tuned" in m]
    pd.testing.assert_frame_equal(cached.ground_truth, result.ground_truth)
    pd.testing.assert_frame_equal(cached.scores, result.scores)


def test_finetune_runs_are_read_back_and_skipped_models_retried(tmp_path):
    """The shared fine-tune loop of both benchmarks: run folder, done.json row, skips, read-back."""
    import json
    from dataclasses import asdict
    from types import SimpleNamespace

    from hf_tsel.groundtruth.features import ZooFeatures
    from hf_tsel.groundtruth.finetune import FinetuneResult
    from hf_tsel.offline.benchmark import _finetune_models, finetune_settings

    def split(keys: dict[str, str], num_samples: int) -> ZooFeatures:
        return ZooFeatures(data=SimpleNamespace(num_samples=num_samples),
                           entries={m: SimpleNamespace(name=m) for m in ("a", "b", "c")},
                           features={m: SimpleNamespace(manifest={"key": k}) for m, k in keys.items()})

    fitted: list[str] = []

    def fit(entry, run_dir):
        fitted.append(entry.name)
        if entry.name == "b":
            return None  # e.g. no PyTorch module to fine-tune
        run_dir.mkdir(parents=True)
        return FinetuneResult(accuracy=0.5, learning_rate=0.1, weight_decay=0.0)

    settings = finetune_settings((0.1,), 1, 8)
    train, test = split({"a": "ta", "b": "tb", "c": "tc"}, 10), split({"a": "sa", "b": "sb"}, 4)  # c: no test features

    def run() -> list[dict]:
        return _finetune_models("task", "full", train, test, settings, fit, work_dir=tmp_path, num_train=8,
                                log=lambda message: None, run_identity=(0.2,))

    rows = run()
    assert fitted == ["a", "b"] and [row["model"] for row in rows] == ["a"]
    assert list(rows[0]) == ["dataset", "model", "protocol", "accuracy", "num_train", "num_test", "hyperparameters",
                             "seconds"]
    assert rows[0]["num_train"] == 8 and rows[0]["num_test"] == 4 and rows[0]["hyperparameters"] == "lr=0.1,wd=0"
    # The folder name hashes (train key, test key, settings, run identity); changing it orphans every cached run.
    assert asdict(settings)["grid"] == {"optimizer": "sgd", "learning_rates": (0.1,), "weight_decays": (0.0,)}
    done = tmp_path / "finetune" / "task" / "a" / "8ccfdfb2b7ada22c" / "done.json"
    assert json.loads(done.read_text()) == rows[0]
    fitted.clear()
    assert run() == rows and fitted == ["b"]  # a finished run is read back; a skipped model is tried again


@pytest.mark.slow  # real pretrained weights
@pytest.mark.parametrize("name", ["digit-cnn", "ppocr-mobilenetv3", "craft-vgg16bn"])
def test_extra_offline_models_load_through_the_onnx_loader(name, tmp_path, monkeypatch):
    from hf_tsel.backbones import load_backbone
    from hf_tsel.offline import extras as offline_extras
    from hf_tsel.zoo import load_zoo

    monkeypatch.setenv("HF_TSEL_HOME", str(tmp_path))
    entry = {e.name: e for e in load_zoo("offline-benchmark")}[name]
    backbone = load_backbone(entry)
    assert backbone.feature_dim == {"digit-cnn": 256, "ppocr-mobilenetv3": 200, "craft-vgg16bn": 512}[name]
    rng = np.random.default_rng(0)
    from PIL import Image

    batch = torch.stack([backbone.transform(Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)))
                         for _ in range(2)])
    features, _ = backbone.embed(batch)
    assert features.shape == (2, backbone.feature_dim) and torch.isfinite(features).all()
    if name in offline_extras.TORCH_MODULES:  # the fine-tuning module is the one the ONNX file was exported from
        with torch.no_grad():
            expected = offline_extras.torch_feature_module(name).eval()(batch)
        torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # real pretrained weights
def test_digit_cnn_recognises_a_real_digit():
    from sklearn.datasets import load_digits

    from hf_tsel.offline.extras import digit_cnn_module

    module = digit_cnn_module()
    digits = load_digits()
    images = torch.tensor(digits.images[:200] / 16.0, dtype=torch.float32)
    images = torch.nn.functional.interpolate(images[:, None], size=(28, 28), mode="bilinear")
    images = ((images - 0.1307) / 0.3081).repeat(1, 3, 1, 1)
    with torch.no_grad():
        features = module(images)
    # The pretrained fc1 features separate digit classes far better than chance (a random CNN would not).
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    accuracy = cross_val_score(LogisticRegression(max_iter=500), features.numpy(), digits.target[:200], cv=3).mean()
    assert accuracy > 0.7


def test_a_partial_run_updates_its_own_rows_of_the_tables_and_keeps_the_rest(tmp_path):
    from hf_tsel.groundtruth.evaluate import evaluation_table
    from hf_tsel.offline.benchmark import OfflineBenchmarkResult, merged_with_tables, write_benchmark_tables

    def truth(protocol, accuracies):
        return [{"dataset": "d", "model": m, "protocol": protocol, "accuracy": a} for m, a in accuracies.items()]

    def scores(metric, values):
        return [{"dataset": "d", "model": m, "metric": metric, "score": v} for m, v in values.items()]

    old_scores = pd.DataFrame(scores("logme", {"a": 1.0, "b": 2.0, "c": 3.0})
                              + scores("knn", {"a": 0.0, "b": 0.0, "c": 1.0}))
    old_truth = pd.DataFrame(truth("linear-probe", {"a": 0.1, "b": 0.2, "c": 0.3})
                             + truth("finetune-last", {"a": 0.3, "b": 0.2, "c": 0.1}))
    write_benchmark_tables(OfflineBenchmarkResult(old_scores, old_truth, evaluation_table(old_scores, old_truth)), tmp_path)
    new_scores = pd.DataFrame(scores("knn", {"a": 0.1, "b": 0.5, "c": 0.9}))
    new_truth = pd.DataFrame(truth("linear-probe", {"a": 0.1, "b": 0.25, "c": 0.3}))
    merged = merged_with_tables(OfflineBenchmarkResult(new_scores, new_truth, evaluation_table(new_scores, new_truth)),
                                tmp_path)
    by_metric = merged.scores.set_index(["metric", "model"])["score"]
    assert by_metric[("knn", "b")] == 0.5 and by_metric[("logme", "c")] == 3.0 and len(merged.scores) == 6
    by_protocol = merged.ground_truth.set_index(["protocol", "model"])["accuracy"]
    assert by_protocol[("linear-probe", "b")] == 0.25 and by_protocol[("finetune-last", "a")] == 0.3
    assert set(merged.evaluation["metric"]) == {"logme", "knn"} and len(merged.evaluation) == 4


def test_the_answer_row_is_each_protocols_goal_answer():
    from hf_tsel.groundtruth.evaluate import evaluation_table
    from hf_tsel.metrics.consensus import ANSWERS
    from hf_tsel.offline.benchmark import answer_evaluation

    models = ["a", "b", "c", "d"]
    rng = np.random.default_rng(0)
    members = sorted({m for config in ANSWERS.values() for m in config.members})
    scores = pd.DataFrame([{"dataset": "x", "model": model, "metric": metric, "score": float(rng.normal())}
                           for model in models for metric in members])
    truth = pd.DataFrame([{"dataset": "x", "model": model, "protocol": protocol, "accuracy": float(rng.uniform())}
                          for model in models for protocol in ("finetune-last", "linear-probe")])
    answers = answer_evaluation(scores, truth).set_index("protocol")
    assert set(answers["metric"]) == {"answer"} and set(answers.index) == {"finetune-last", "linear-probe"}
    every = evaluation_table(scores, truth)
    for protocol, goal in (("finetune-last", "finetune"), ("linear-probe", "linear-probe")):
        if len(ANSWERS[goal].members) == 1:  # a one-member answer ranks exactly as its member
            member = every[(every["protocol"] == protocol) & (every["metric"] == ANSWERS[goal].members[0])]
            assert answers.loc[protocol, "weighted_kendall_tau"] == pytest.approx(member["weighted_kendall_tau"].item())
