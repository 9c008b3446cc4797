"""Fixtures: tiny deterministic torch backbones behind the real loader interface, and a colour dataset on disk.

``fake_torch_models`` routes :func:`hf_tsel.backbones.load_backbone` to small ``TorchBackbone``
objects (real ``TorchBackbone`` class, real preprocessing), so ranking, the feature cache, linear
probes and fine-tuning all run for real, in seconds, without any network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers.models import route_model_loading

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230)]


def colour_images(per_class: int, seed: int):
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, colour in enumerate(COLOURS):
        for _ in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 60, (12, 12, 3)), 0, 255).astype(np.uint8)
            images.append(Image.fromarray(pixels))
            labels.append(label)
    return images, labels


@pytest.fixture
def colour_dataset(tmp_path):
    """A ``save_to_disk`` DatasetDict folder with 3 colour classes: train (12/class) and test (8/class)."""
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["r", "g", "b"])})
    splits = {}
    for split, per_class, seed in (("train", 12, 0), ("test", 8, 1)):
        images, labels = colour_images(per_class, seed)
        splits[split] = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    path = tmp_path / "colours"
    datasets.DatasetDict(splits).save_to_disk(str(path))
    return path


def _module_for(name: str) -> nn.Module:
    # Weights depend only on the name: a rebuilt model is the same "pretrained" model.
    generator = torch.Generator().manual_seed(sum(map(ord, name)))
    module = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return module


def write_zoo(path, names):
    models = "".join(f"  - {{name: {n}, hub_id: fake/{n}, loader: timm, family: fake}}\n" for n in names)
    path.write_text(f"name: {path.stem}\nmodels:\n{models}")
    return path


@pytest.fixture
def fake_torch_models(monkeypatch, tmp_path):
    """Patch model loading; returns ``(zoo_path, loads)`` for a zoo ``tiny`` of three fake models."""
    from hf_tsel.backbones.base import TorchBackbone
    from hf_tsel.preprocess import ImageTransform

    loads: list[str] = []

    def load(entry, *, device="cpu", **options):
        loads.append(entry.name)

        def forward(module, batch):
            return module(batch), None

        return TorchBackbone(entry, _module_for(entry.name), forward, resolved_revision="f" * 40, feature_dim=8,
                             preprocessor=ImageTransform(input_size=(3, 8, 8), crop_pct=1.0, interpolation="bilinear"),
                             has_source_head=False, device=torch.device(device))

    route_model_loading(monkeypatch, load)
    monkeypatch.setenv("HF_TSEL_HOME", str(tmp_path / "hf_tsel_home"))
    return write_zoo(tmp_path / "tiny.yaml", ["alpha", "beta", "gamma"]), loads
