"""Linear-probe and fine-tuning ground truth on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from hf_tsel.errors import UserError
from hf_tsel.groundtruth.finetune import (GRIDS, FinetuneConfig, Grid, finetune, last_stage_parameter_names,
                                          summarise_points)
from hf_tsel.groundtruth.linear_probe import linear_probe


def _blobs(n_per_class: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    features = rng.normal(size=(len(labels), 6)) + separation * np.eye(6)[labels]
    return features, labels


def test_linear_probe_orders_separable_above_noise():
    x, y = _blobs(40, 4.0)
    noise = np.random.default_rng(1).normal(size=x.shape)
    good = linear_probe(x[::2], y[::2], x[1::2], y[1::2])
    bad = linear_probe(noise[::2], y[::2], noise[1::2], y[1::2])
    assert good.accuracy > 0.9 > 0.6 > bad.accuracy
    assert good.c in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    assert good.num_train == 60 and good.num_test == 60


def test_linear_probe_rejects_unseen_test_class_and_bad_shapes():
    x, y = _blobs(10, 2.0)
    with pytest.raises(UserError, match="never occur"):
        linear_probe(x, y, x[:3], np.array([0, 1, 7]))
    with pytest.raises(UserError, match="differ in width"):
        linear_probe(x, y, x[:, :3], y)


class _TinyImages(torch.utils.data.Dataset):
    """3-class 8x8 images whose class is the bright colour channel (flip- and shift-invariant)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        self.images = torch.rand(n, 3, 8, 8, generator=g)
        for i, label in enumerate(self.labels.tolist()):
            self.images[i, label] += 0.5

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def _tiny_backbone() -> nn.Module:
    torch.manual_seed(123)  # "pretrained" weights: identical on every build
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


TINY_GRID = Grid("sgd", (0.1, 0.01), (0.0,))


def test_finetune_learns_and_never_recomputes_a_finished_point(tmp_path):
    config = FinetuneConfig(grid=TINY_GRID, epochs=3, batch_size=8, augment=True)
    result = finetune(_tiny_backbone, 8, 3, _TinyImages(48, 0), _TinyImages(24, 1), config, tmp_path)
    assert len(result.points) == 2 and 0.0 <= result.accuracy <= 1.0
    assert result.accuracy > 0.5  # colour task is easy; chance is 1/3
    point_files = sorted(tmp_path.glob("*/result.json"))
    assert len(point_files) == 2 and not list(tmp_path.glob("*/last.pt"))
    # Tamper a finished point: a re-run must read it back instead of retraining.
    stored = json.loads(point_files[0].read_text())
    stored["accuracy"] = 1.0
    point_files[0].write_text(json.dumps(stored))
    again = finetune(_tiny_backbone, 8, 3, _TinyImages(48, 0), _TinyImages(24, 1), config, tmp_path)
    assert again.accuracy == 1.0


def test_killed_point_resumes_from_its_last_epoch(tmp_path):
    config = FinetuneConfig(grid=Grid("sgd", (0.05,), (1e-4,)), epochs=3, batch_size=8, augment=True)
    train, test = _TinyImages(40, 0), _TinyImages(20, 1)
    reference = finetune(_tiny_backbone, 8, 3, train, test, config, tmp_path / "uninterrupted")

    class Killed(Exception):
        pass

    def kill_after_first_epoch(event):
        if event["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        finetune(_tiny_backbone, 8, 3, train, test, config, tmp_path / "killed", on_epoch_end=kill_after_first_epoch)
    assert list((tmp_path / "killed").glob("*/last.pt"))
    epochs_run = []
    resumed = finetune(_tiny_backbone, 8, 3, train, test, config, tmp_path / "killed",
                       on_epoch_end=lambda e: epochs_run.append(e["epoch"]))
    assert epochs_run == [2, 3]
    assert resumed.points[0]["history"] == pytest.approx(reference.points[0]["history"])


def test_run_dir_with_other_settings_is_refused(tmp_path):
    config = FinetuneConfig(grid=Grid("sgd", (0.1,), (0.0,)), epochs=1, batch_size=8, max_steps_per_epoch=1)
    finetune(_tiny_backbone, 8, 3, _TinyImages(12, 0), _TinyImages(6, 1), config, tmp_path)
    with pytest.raises(UserError, match="other settings"):
        finetune(_tiny_backbone, 8, 3, _TinyImages(12, 0), _TinyImages(6, 1),
                 FinetuneConfig(grid=config.grid, epochs=2, batch_size=8), tmp_path)


def test_adamw_grid_and_last_stage_training(tmp_path):
    assert GRIDS["adamw"].points() == [(1e-5, 1e-2), (1e-5, 1e-4), (2e-5, 1e-2), (2e-5, 1e-4), (5e-5, 1e-2), (5e-5, 1e-4)]
    assert len(GRIDS["sgd"].points()) == 20
    backbone = _tiny_backbone()
    assert last_stage_parameter_names(backbone) == ["3.weight", "3.bias"]
    before = _tiny_backbone().state_dict()
    config = FinetuneConfig(grid=Grid("adamw", (1e-2,), (1e-4,)), epochs=1, batch_size=8, train_layers="last",
                            augment=False, selection="last-epoch")
    built = []

    def build():
        built.append(_tiny_backbone())
        return built[-1]

    finetune(build, 8, 3, _TinyImages(24, 0), _TinyImages(6, 1), config, tmp_path)
    after = built[-1].state_dict()
    assert torch.equal(after["0.weight"], before["0.weight"])  # frozen stem
    assert torch.equal(after["1.running_mean"], before["1.running_mean"])  # frozen BN keeps its statistics
    assert not torch.equal(after["3.weight"], before["3.weight"])  # last stage trained


def test_summary_averages_seeds_before_choosing():
    points = [{"lr": 0.1, "weight_decay": 0.0, "seed": 0, "accuracy": 0.9},
              {"lr": 0.1, "weight_decay": 0.0, "seed": 1, "accuracy": 0.1},
              {"lr": 0.01, "weight_decay": 0.0, "seed": 0, "accuracy": 0.6},
              {"lr": 0.01, "weight_decay": 0.0, "seed": 1, "accuracy": 0.6}]
    best = summarise_points(points)
    assert (best.learning_rate, best.accuracy) == (0.01, pytest.approx(0.6))


def test_summary_selects_on_validation_accuracy_when_present():
    points = [{"lr": 0.1, "weight_decay": 0.0, "seed": 0, "accuracy": 0.9, "validation_accuracy": 0.5},
              {"lr": 0.01, "weight_decay": 0.0, "seed": 0, "accuracy": 0.7, "validation_accuracy": 0.8}]
    best = summarise_points(points)
    assert (best.learning_rate, best.accuracy) == (0.01, pytest.approx(0.7))  # the test accuracy of the choice


def test_validation_set_chooses_the_epoch_and_test_accuracy_is_reported(tmp_path):
    config = FinetuneConfig(grid=TINY_GRID, epochs=3, batch_size=8, augment=False)
    result = finetune(_tiny_backbone, 8, 3, _TinyImages(48, 0), _TinyImages(24, 1), config, tmp_path,
                      validation_set=_TinyImages(12, 2))
    for point in result.points:
        chosen = point["validation_history"].index(max(point["validation_history"]))
        assert point["accuracy"] == point["history"][chosen]
        assert point["validation_accuracy"] == max(point["validation_history"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_finetune_runs_on_cuda(tmp_path):
    from accelerate import Accelerator

    accelerator = Accelerator()
    assert accelerator.device.type == "cuda"
    config = FinetuneConfig(grid=Grid("sgd", (0.1,), (0.0,)), epochs=3, batch_size=8)
    result = finetune(_tiny_backbone, 8, 3, _TinyImages(48, 0), _TinyImages(24, 1), config, tmp_path,
                      accelerator=accelerator)
    assert result.accuracy > 0.5


def test_last_stage_split_reproduces_the_model_or_is_refused():
    import timm

    from hf_tsel.backbones.timm_loader import _make_forward
    from hf_tsel.backbones.base import PooledFeatures
    from hf_tsel.groundtruth.trainable import split_last_stage

    example = torch.rand(2, 3, 64, 64)
    lite = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    module = PooledFeatures(lite, _make_forward("default", True))
    trunk, tail = split_last_stage(module, example)
    assert [n for n, _ in tail.named_parameters()][0].startswith("0.")  # starts at the last block stage
    with torch.no_grad():
        torch.testing.assert_close(tail(trunk(example)), module(example))
    assert last_stage_parameter_names(module)[0].startswith("model.blocks.6.")
    vit = timm.create_model("test_vit", pretrained=False).eval()
    assert split_last_stage(PooledFeatures(vit, _make_forward("default", False)), torch.rand(2, 3, 160, 160)) is None


def test_checkpoint_writes_of_two_processes_do_not_collide(tmp_path, monkeypatch):
    """Parallel benchmark processes may train the same grid point; each stages its own file (a shared
    ``last.pt.tmp`` was renamed away under the other process, which then crashed)."""
    import importlib
    import os

    finetune = importlib.import_module("hf_tsel.groundtruth.finetune")  # the module, not the function of that name
    target = tmp_path / "last.pt"
    monkeypatch.setattr(os, "getpid", lambda: 1001)
    first = finetune._staging_path(target)
    torch.save({"step": 1}, first)  # process 1001 is between its write and its rename
    monkeypatch.setattr(os, "getpid", lambda: 1002)
    finetune._atomic_save({"step": 2}, target)  # process 1002 saves the same checkpoint meanwhile
    first.replace(target)  # 1001's rename still finds its file
    assert torch.load(target)["step"] == 1
