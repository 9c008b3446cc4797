"""A fake backbone and zoo files for pipeline tests: colour statistics instead of a network, loaded in place of
every model by :func:`route_model_loading`; zoo YAML files of fake or tiny cached models.

Not a test module: fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class FakeBackbone:
    """Follows the Backbone interface: colour statistics through a fixed random projection."""

    def __init__(self, entry, device="cpu", feature_dim: int = 6, source_classes: int | None = 5):
        self.entry, self.device, self.feature_dim = entry, torch.device(device), feature_dim
        self.resolved_revision = "f" * 40
        self.has_source_head = source_classes is not None
        self.preprocessing = {"input_size": [3, 8, 8]}
        self.preprocessor = to_small_tensor
        self.details = {"features": "colour statistics"}
        generator = torch.Generator().manual_seed(sum(map(ord, entry.name)))
        self.projection = torch.randn(6, feature_dim, generator=generator)
        self.head = torch.randn(feature_dim, source_classes, generator=generator) if source_classes else None
        self.calls = 0

    def transform(self, image):
        return to_small_tensor(image)

    def embed(self, batch):
        self.calls += 1
        stats = torch.cat([batch.mean(dim=(2, 3)), batch.std(dim=(2, 3))], dim=1)
        features = torch.tanh(stats @ self.projection)
        return features, None if self.head is None else features @ self.head

    def to(self, device):
        self.device = torch.device(device)
        return self


def to_small_tensor(image: Image.Image) -> torch.Tensor:
    """Module-level (picklable) preprocessing of the fake backbone: RGB 8x8 in [0, 1], CHW."""
    array = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def write_zoo(path: Path, names: list[str]) -> Path:
    """A zoo YAML of ``names`` (``fake/<name>`` hub ids; only usable with the fake loader)."""
    models = "".join(f"  - name: {n}\n    hub_id: fake/{n}\n    loader: timm\n    family: fake\n" for n in names)
    path.write_text(textwrap.dedent("name: fake\nmodels:\n") + models)
    return path


def route_model_loading(monkeypatch, load) -> None:
    """Make every model load call ``load``: the loading API and the extraction's module-level binding of it."""
    from hf_tsel import backbones
    from hf_tsel.extraction import coordination

    monkeypatch.setattr(backbones, "load_backbone", load)
    monkeypatch.setattr(coordination, "load_backbone", load)


def write_tiny_zoo(path: Path, hub_cache, keys: list[str]) -> Path:
    """A zoo YAML of the tiny cached models of ``hub_cache`` (``hub_cache.ids[key]``), timm/transformers loaders."""
    loaders = {"transformers_vit": "transformers"}
    models = "".join(f"  - name: {key.replace('_', '-')}\n    hub_id: {hub_cache.ids[key]}\n"
                     f"    loader: {loaders.get(key, 'timm')}\n" for key in keys)
    path.write_text("name: tiny\nmodels:\n" + models)
    return path
