"""Tiny image datasets (in memory, imagefolder, Hub-cache parquet snapshot) and a fake backbone for pipeline tests.

Images are coloured by class plus noise, so features that see colour separate the classes.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

DATASET_SHA = "d" * 40
CLASS_COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 220, 40)]


def class_images(num_classes: int = 3, per_class: int = 8, size: int = 16, seed: int = 0) -> tuple[list, list[int]]:
    """PIL images (RGB, with one greyscale and one RGBA image) and their labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(num_classes):
        for _ in range(per_class):
            pixels = np.clip(np.array(CLASS_COLOURS[label]) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            images.append(Image.fromarray(pixels.astype(np.uint8)))
            labels.append(label)
    images[1] = images[1].convert("L")
    images[2] = images[2].convert("RGBA")
    return images, labels


def image_dataset(num_classes: int = 3, per_class: int = 8, **extra_columns):
    """A ``datasets.Dataset`` with ``image`` (Image) and ``label`` (ClassLabel) columns."""
    import datasets

    images, labels = class_images(num_classes, per_class)
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"c{i}" for i in range(num_classes)])}
    columns = {"image": images, "label": labels}
    for name, (values, feature) in extra_columns.items():
        columns[name], features[name] = values, feature
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def write_imagefolder(root: Path, num_classes: int = 3, per_class: int = 8, split: str = "train") -> Path:
    """``root/<split>/<class>/<i>.png``."""
    images, labels = class_images(num_classes, per_class)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / split / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i}.png")
    return root


def write_hub_dataset(hub_cache: Path, repo_id: str, splits: dict) -> Path:
    """A dataset repo snapshot in the Hub cache layout: ``data/<split>-00000-of-00001.parquet`` + README configs."""
    repo = Path(hub_cache) / f"datasets--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / DATASET_SHA
    (snapshot / "data").mkdir(parents=True, exist_ok=True)
    for split, dataset in splits.items():
        dataset.to_parquet(str(snapshot / "data" / f"{split}-00000-of-00001.parquet"))
    data_files = "".join(f"      - split: {s}\n        path: data/{s}-*\n" for s in splits)
    (snapshot / "README.md").write_text(f"---\nconfigs:\n  - config_name: default\n    data_files:\n{data_files}---\n")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(DATASET_SHA)
    return snapshot


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


@pytest.fixture
def fake_models(monkeypatch, tmp_path):
    """Route model loading to :class:`FakeBackbone`; returns ``(zoo_path, loads)`` where loads lists loaded names.

    A model named ``missing*`` raises BackboneLoadError(not_found); ``headless*`` has no source head.
    """
    from hf_tsel.backbones import BackboneLoadError

    loads: list[str] = []

    def load(entry, *, device="cpu", **options):
        loads.append(entry.name)
        if entry.name.startswith("missing"):
            raise BackboneLoadError(entry.name, "not_found", "the repository does not exist; check the id")
        return FakeBackbone(entry, device, source_classes=None if entry.name.startswith("headless") else 5)

    route_model_loading(monkeypatch, load)
    return write_zoo(tmp_path / "zoo.yaml", ["alpha", "beta", "headless"]), loads


def route_model_loading(monkeypatch, load) -> None:
    """Make every model load call ``load``: the loading API and the extraction's module-level binding of it."""
    from hf_tsel import backbones
    from hf_tsel.extraction import coordination

    monkeypatch.setattr(backbones, "load_backbone", load)
    monkeypatch.setattr(coordination, "load_backbone", load)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_tiny_zoo(path: Path, hub_cache, keys: list[str]) -> Path:
    """A zoo YAML of the tiny cached models of ``hub_cache`` (``hub_cache.ids[key]``), timm/transformers loaders."""
    loaders = {"transformers_vit": "transformers"}
    models = "".join(f"  - name: {key.replace('_', '-')}\n    hub_id: {hub_cache.ids[key]}\n"
                     f"    loader: {loaders.get(key, 'timm')}\n" for key in keys)
    path.write_text("name: tiny\nmodels:\n" + models)
    return path


@pytest.fixture
def cli_setup(hub_cache, tmp_path):
    """``(env, zoo_path, dataset_id)`` for CLI subprocess runs: offline Hub cache, a tiny dataset repo, own caches."""
    repo_id = "hf-tsel-test/cli-images"
    if not (Path(hub_cache.hub_dir) / f"datasets--{repo_id.replace('/', '--')}").exists():
        write_hub_dataset(hub_cache.hub_dir, repo_id, {"train": image_dataset(per_class=8),
                                                       "test": image_dataset(per_class=4)})
    env = hub_cache.env()
    env.update(HF_TSEL_HOME=str(tmp_path / "hf_tsel_home"), HF_DATASETS_CACHE=str(tmp_path / "datasets_cache"),
               PYTHONUNBUFFERED="1", COLUMNS="200")
    zoo = write_tiny_zoo(tmp_path / "tiny.yaml", hub_cache, ["timm_cnn", "timm_vit", "transformers_vit"])
    return env, zoo, repo_id


def run_cli(args: list[str], env: dict, timeout: float = 240):
    """Run ``hf-tsel ARGS`` in a subprocess; returns the CompletedProcess (text output)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "hf_tsel.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def launch_two_cpu_processes(port: int, program: tuple[str, ...] = ("-m", "hf_tsel.cli")) -> list[str]:
    """``torchrun`` of ``hf_tsel.cli`` (or another ``program``) as 2 CPU processes (gloo) rendezvousing on ``port``;
    append the CLI arguments.

    ``accelerate launch --cpu --num_processes 2`` would start a single process: without MPI,
    accelerate's simple launcher does not spawn CPU workers. torchrun sets the ``torch.distributed``
    environment that ``Accelerator(cpu=True)`` turns into a 2-process gloo group.
    """
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port), *program]
